import BatonCore
import Foundation
import PostgresNIO

/// Reads the columns of one result row by name, turning stored text back into Baton's enums and
/// naming the column when a value cannot be read.
struct RowReader {
    private let row: PostgresRandomAccessRow

    init(_ row: PostgresRow) { self.row = row.makeRandomAccess() }

    func callAsFunction<Value: PostgresDecodable>(_ column: String, as type: Value.Type = Value.self) throws -> Value {
        do {
            return try row[column].decode(Value.self)
        } catch {
            throw SagaStoreError.corruptRow("column \(column): \(error)")
        }
    }

    /// A `jsonb` column as a ``JSONValue``, or `nil` when the column is SQL `NULL`: read by
    /// ``JSONParser``, which costs a fraction of `JSONDecoder`'s generic decoding (sagas' inputs
    /// and outputs are read on every step). The value was bounded when it came in; the depth limit
    /// here is `JSONDecoder`'s, which read these columns before.
    func jsonValue(_ column: String) throws -> JSONValue? {
        let cell = row[column]
        guard var bytes = cell.bytes else { return nil }
        guard cell.dataType == .jsonb || cell.dataType == .json else {
            throw SagaStoreError.corruptRow("column \(column): \(cell.dataType) is not JSON")
        }
        // Binary jsonb starts with its format version, 1; the JSON text follows.
        if cell.dataType == .jsonb && cell.format == .binary {
            guard bytes.readInteger(as: UInt8.self) == 1 else {
                throw SagaStoreError.corruptRow("column \(column): unknown jsonb format")
            }
        }
        do {
            // Written by Baton, through jsonb: a Double beyond the Int64 range comes back in plain
            // digits, and must read back as the Double it was.
            return try JSONParser.parse(bytes.readableBytesView, maximumDepth: 512, largeIntegers: .readAsDouble)
        } catch {
            throw SagaStoreError.corruptRow("column \(column): \(error)")
        }
    }

    /// A `jsonb` column decoded as `Value`, or `nil` when the column is SQL `NULL`.
    func json<Value: Codable & Sendable>(_ column: String, as type: Value.Type) throws -> Value? {
        try self(column, as: JSONB<Value>?.self)?.value
    }

    /// A text column holding the raw value of `Value`.
    func enumeration<Value: RawRepresentable>(_ column: String, as type: Value.Type) throws -> Value
    where Value.RawValue == String {
        let text = try self(column, as: String.self)
        guard let value = Value(rawValue: text) else {
            throw SagaStoreError.corruptRow("column \(column): unknown value '\(text)'")
        }
        return value
    }

    func optionalEnumeration<Value: RawRepresentable>(_ column: String, as type: Value.Type) throws -> Value?
    where Value.RawValue == String {
        guard try self(column, as: String?.self) != nil else { return nil }
        return try enumeration(column, as: type)
    }
}

extension RowReader {
    /// The saga's accepted cancel, from `cancel_reason`, `cancelled_by` and `cancelled_at`: `nil`
    /// when the saga was never cancelled.
    func cancellation() throws -> SagaCancellation? {
        guard let reason = try self("cancel_reason", as: String?.self), let at = try self("cancelled_at", as: Date?.self) else {
            return nil
        }
        return SagaCancellation(reason: reason, requestedBy: try self("cancelled_by"), at: at)
    }

    /// A child saga's parent, from `parent_saga_id`, `parent_step` and `parent_depth`: `nil` for a
    /// saga started from outside.
    func parent() throws -> SagaParent? {
        guard let id = try self("parent_saga_id", as: UUID?.self), let step = try self("parent_step", as: String?.self) else {
            return nil
        }
        return SagaParent(sagaID: id.sagaID, step: step, depth: try self("parent_depth", as: Int?.self) ?? 1)
    }
}
