import BatonCore
import Foundation
import PostgresNIO
import Testing

@testable import BatonStore

/// The saga's columns are named in several places that must agree: the tables, the write set's
/// JSON keys, the `jsonb_to_record` definitions that read them, and the statements' column lists.
/// A key the write set spells one way and the SQL another does not fail: `jsonb_to_record` reads a
/// missing key as `NULL`. These tests fail instead.
@Suite("Saga columns agree")
struct SagaColumnsTests {
    typealias Fixture = StoreFixture

    /// Every `jsonb_to_record(set)(w.doc->'part') AS alias(name type, ...)` in `sql`: part → names.
    static func recordDefinitions(in sql: String) -> [String: [String]] {
        let pattern = #/jsonb_to_record(?:set)?\(w\.doc->'(\w+)'\) AS \w*\s*\(([^)]*)\)/#
        var parts: [String: [String]] = [:]
        for match in sql.matches(of: pattern) {
            parts[String(match.1)] = match.2.split(separator: ",").compactMap {
                $0.split(whereSeparator: \.isWhitespace).first.map(String.init)
            }
        }
        return parts
    }

    /// Top-level keys the SQL reads as `w.doc->'key'` or `w.doc->>'key'`.
    static func documentKeys(in sql: String) -> Set<String> {
        Set(sql.matches(of: #/w\.doc->>?'(\w+)'/#).map { String($0.1) })
    }

    /// The column list of `INSERT INTO table (...)` in `sql`.
    static func insertColumns(of table: String, in sql: String) -> Set<String> {
        guard let match = sql.firstMatch(of: try! Regex("INSERT INTO \(table) \\(([^)]*)\\)")) else { return [] }
        let list = match.output[1].substring ?? ""
        return Set(list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
    }

    /// A write set with every part filled in: a new saga's start (all steps, history, a command, timers).
    func document() throws -> [String: JSONValue] {
        let new = try Fixture.startedSaga(idempotency: IdempotencyKey(key: "k", requestHash: "h"))
        let write = SagaWriteSet(old: nil, new: new.saga, transition: new.transition, idempotency: new.idempotency, now: Fixture.epoch)
        #expect(!write.steps.isEmpty && !write.history.isEmpty && !write.outbox.isEmpty && !write.scheduledTimers.isEmpty)
        guard case .object(let document) = try JSONParser.parse(write.encoded()) else {
            Issue.record("the write set is not a JSON object")
            return [:]
        }
        return document
    }

    /// The keys of a part of the document (an object, or the first object of an array).
    static func keys(of part: JSONValue?) -> Set<String> {
        switch part {
        case .object(let members): Set(members.keys)
        case .array(let elements): keys(of: elements.first)
        default: []
        }
    }

    @Test("each part of the write set carries exactly the keys its jsonb_to_record definition reads")
    func writeSetMatchesDefinitions() throws {
        let document = try document()
        for sql in [SagaUpdateStatement.sql, SagaCreateStatement.sql, SagaBatchUpdateStatement.sql] {
            let definitions = Self.recordDefinitions(in: sql)
            #expect(Set(definitions.keys).isSuperset(of: ["saga", "steps", "history", "scheduled_timers"]))
            for (part, names) in definitions {
                #expect(Set(names) == Self.keys(of: document[part]), "part '\(part)'")
            }
            let missing = Self.documentKeys(in: sql).subtracting(document.keys)
            #expect(missing.isEmpty, "the SQL reads keys the write set never sends: \(missing.sorted())")
        }
        // The outbox part is no record set: it is the queued commands themselves, each stored whole
        // as a row's `command`, which the relay reads back as a StepCommand.
        guard case .array(let commands) = document["outbox"], !commands.isEmpty else {
            Issue.record("the write set's outbox is not an array of commands")
            return
        }
        for command in commands {
            #expect(throws: Never.self) { try JSONDecoder().decode(StepCommand.self, from: Data(JSONWriter.text(of: command).utf8)) }
        }
    }

    @Test("what the write set defines are columns of the tables, and the inserts name every column")
    func definitionsMatchTables() async throws {
        try await Fixture.withStore { store in
            var columns: [String: Set<String>] = [:]
            let rows = try await store.client.query(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'baton'")
            for try await (table, column) in rows.decode((String, String).self) { columns[table, default: []].insert(column) }

            let definitions = Self.recordDefinitions(in: SagaUpdateStatement.sql)
            let tables = [
                "saga": "sagas", "steps": "saga_steps", "history": "saga_history", "scheduled_timers": "timers",
            ]
            for (part, table) in tables {
                let unknown = Set(definitions[part] ?? []).subtracting(columns[table] ?? [])
                #expect(unknown.isEmpty, "'\(part)' defines what baton.\(table) has no column for: \(unknown.sorted())")
            }
            // A new saga writes every column of its two tables.
            for table in ["sagas", "saga_steps"] {
                let inserted = Self.insertColumns(of: "baton.\(table)", in: SagaCreateStatement.sql)
                #expect(
                    inserted == columns[table], "baton.\(table): the insert misses \((columns[table] ?? []).subtracting(inserted).sorted())"
                )
            }
        }
    }
}
