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
