import BatonCore
import Foundation
import PostgresNIO

extension SagaStore {
    /// Registers a workflow definition under its name and version.
    ///
    /// Registering the same content again is a no-op, so every replica registers `workflows/` at
    /// start-up. A name and version are immutable once registered: sagas pin them.
    /// - Parameters:
    ///   - registeredBy: Who registered it (the API caller), kept with the version.
    ///   - replacingUnused: Replace the content of a version no saga has run (`baton dev`, where a
    ///     definition changes while it is written). A saga started meanwhile keeps the hash it
    ///     pinned, and the engine parks it rather than run it on other content.
    /// - Throws: ``SagaStoreError/definitionConflict(name:version:registeredHash:newHash:)`` when the
    ///   version is registered with different content;
    ///   ``SagaStoreError/definitionInUse(name:version:)`` when it was to be replaced but sagas ran it.
    @discardableResult
    public func registerDefinition(
        _ definition: WorkflowDefinition, source: String?, now: Date, registeredBy: String? = nil, replacingUnused: Bool = false
    ) async throws
        -> DefinitionRegistration
    {
        let hash = definition.contentHash
        let json = String(decoding: definition.canonicalJSON, as: UTF8.self)
        let inserted = try await query(
            """
            INSERT INTO baton.workflow_definitions (name, version, content_hash, definition, source, registered_at, registered_by)
            VALUES (\(definition.name), \(definition.version), \(hash), \(json)::jsonb, \(source), \(now), \(registeredBy))
            ON CONFLICT (name, version) DO NOTHING
            RETURNING registered_at
            """)
        let stored = StoredDefinition(
            definition: definition, contentHash: hash, source: source, registeredAt: now, registeredBy: registeredBy)
        for try await registeredAt in inserted.decode(Date.self) {
            var registered = stored
            registered.registeredAt = registeredAt
            return .registered(registered)
        }
        guard let existing = try await self.definition(name: definition.name, version: definition.version) else {
            throw SagaStoreError.corruptRow("workflow \(definition.name) v\(definition.version) conflicted but cannot be read")
        }
        if existing.contentHash == hash { return .alreadyRegistered(existing) }
        guard replacingUnused else {
            throw SagaStoreError.definitionConflict(
                name: definition.name, version: definition.version, registeredHash: existing.contentHash, newHash: hash)
        }
        try await transaction { connection in
            // FOR UPDATE conflicts with the key-share lock a saga's insert takes on the row it
            // references: no saga can start on this version between the check and the update.
            _ = try await connection.run(
                """
                SELECT 1 FROM baton.workflow_definitions WHERE name = \(definition.name) AND version = \(definition.version) FOR UPDATE
                """, logger: logger)
            let used = try await connection.run(
                """
                SELECT EXISTS (SELECT 1 FROM baton.sagas WHERE workflow = \(definition.name) AND workflow_version = \(definition.version))
                """, logger: logger)
            for try await inUse in used.decode(Bool.self) where inUse {
                throw SagaStoreError.definitionInUse(name: definition.name, version: definition.version)
            }
            _ = try await connection.run(
                """
                UPDATE baton.workflow_definitions
                SET content_hash = \(hash), definition = \(json)::jsonb, source = \(source), registered_at = \(now),
                    registered_by = \(registeredBy)
                WHERE name = \(definition.name) AND version = \(definition.version)
                """, logger: logger)
        }
        return .replaced(stored)
    }

    /// One version of a workflow, or `nil` when it is not registered.
    public func definition(name: String, version: Int) async throws -> StoredDefinition? {
        try await definitions(
            """
            SELECT name, version, content_hash, definition, source, registered_at, registered_by FROM baton.workflow_definitions
            WHERE name = \(name) AND version = \(version)
            """
        ).first
    }

    /// The highest version of a workflow, or `nil` when none is registered.
    public func latestDefinition(name: String) async throws -> StoredDefinition? {
        try await definitions(
            """
            SELECT name, version, content_hash, definition, source, registered_at, registered_by FROM baton.workflow_definitions
            WHERE name = \(name) ORDER BY version DESC LIMIT 1
            """
        ).first
    }

    /// The number of the highest version of a workflow, or `nil` when none is registered: an
    /// index-only look-up, for callers that keep the definitions themselves.
    public func latestDefinitionVersion(name: String) async throws -> Int? {
        let rows = try await query(
            "SELECT max(version) FROM baton.workflow_definitions WHERE name = \(name)")
        for try await version in rows.decode(Int?.self) { return version }
        return nil
    }

    /// Every version of a workflow, newest first.
    public func definitionVersions(name: String) async throws -> [StoredDefinition] {
        try await definitions(
            """
            SELECT name, version, content_hash, definition, source, registered_at, registered_by FROM baton.workflow_definitions
            WHERE name = \(name) ORDER BY version DESC
            """)
    }

    /// Every participant any registered workflow version names, sorted.
    public func participants() async throws -> [String] {
        let rows = try await query(
            """
            SELECT DISTINCT step->>'participant' AS participant
            FROM baton.workflow_definitions,
                jsonb_array_elements(definition->'steps' || coalesce(definition->'onFailure', '[]')) AS step
            WHERE step->>'signal' IS NULL AND step->>'workflow' IS NULL
            ORDER BY 1
            """)
        var names: [String] = []
        for try await name in rows.decode(String.self) { names.append(name) }
        return names
    }

    /// The newest version of every workflow, by name.
    public func latestDefinitions() async throws -> [StoredDefinition] {
        try await definitions(
            """
            SELECT DISTINCT ON (name) name, version, content_hash, definition, source, registered_at, registered_by
            FROM baton.workflow_definitions ORDER BY name, version DESC
            """)
    }

    private func definitions(_ sql: PostgresQuery) async throws -> [StoredDefinition] {
        try await Self.definitions(in: try await query(sql))
    }

    /// A definition read on `connection` (inside a transaction: see ``LockedReads``).
    func definition(name: String, version: Int, on connection: PostgresConnection) async throws -> StoredDefinition? {
        let rows = try await connection.run(
            """
            SELECT name, version, content_hash, definition, source, registered_at, registered_by FROM baton.workflow_definitions
            WHERE name = \(name) AND version = \(version)
            """,
            logger: logger
        )
        return try await Self.definitions(in: rows).first
    }

    private static func definitions(in rows: some AsyncSequence<PostgresRow, any Error>) async throws -> [StoredDefinition] {
        var found: [StoredDefinition] = []
        for try await row in rows {
            let column = RowReader(row)
            let name: String = try column("name")
            let version: Int = try column("version")
            let hash: String = try column("content_hash")
            guard let definition = try column.json("definition", as: WorkflowDefinition.self) else {
                throw SagaStoreError.corruptRow("workflow \(name) v\(version) has no definition")
            }
            // Sagas trust a stored definition to be the one they pinned: check it still is.
            guard definition.contentHash == hash else {
                throw SagaStoreError.corruptRow("workflow \(name) v\(version) no longer matches its content hash")
            }
            found.append(
                StoredDefinition(
                    definition: definition, contentHash: hash, source: try column("source"),
                    registeredAt: try column("registered_at"), registeredBy: try column("registered_by")))
        }
        return found
    }
}

extension SagaStore {
    /// Every participant any registered workflow version commands, with the actions (and
    /// compensation actions) it is sent, sorted.
    public func participantActions() async throws -> [String: [String]] {
        let rows = try await query(
            """
            SELECT DISTINCT step->>'participant' AS participant, action
            FROM baton.workflow_definitions,
                jsonb_array_elements(definition->'steps' || coalesce(definition->'onFailure', '[]')) AS step,
                LATERAL (VALUES (step->>'action'), (step->'compensate'->>'action')) AS actions (action)
            WHERE step->>'signal' IS NULL AND step->>'workflow' IS NULL AND action IS NOT NULL
            ORDER BY 1, 2
            """)
        var actions: [String: [String]] = [:]
        for try await (participant, action) in rows.decode((String, String).self) { actions[participant, default: []].append(action) }
        return actions
    }
}
