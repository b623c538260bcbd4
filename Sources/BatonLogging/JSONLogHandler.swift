import Foundation
import Logging

/// A swift-log handler that writes one JSON object per line: `time`, `level`, `logger`,
/// `message`, `source`, then every metadata key at the top level (`saga.id`, `correlation.id`,
/// `trace.id`, …), so that a log pipeline can index them without parsing the message.
///
/// Each line goes out in one `write(2)`, so lines from concurrent tasks never interleave.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let fileDescriptor: Int32

    /// A handler for `label` writing to standard error (or `fileDescriptor`).
    public init(label: String, level: Logger.Level = .info, metadataProvider: Logger.MetadataProvider? = nil, fileDescriptor: Int32 = 2) {
        self.label = label
        self.logLevel = level
        self.metadataProvider = metadataProvider
        self.fileDescriptor = fileDescriptor
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let given = event.metadata { merged.merge(given) { _, new in new } }
        let line = Self.line(
            time: Date.now, level: event.level, label: label, message: event.message.description, source: event.source,
            metadata: merged)
        line.withCString { pointer in
            var offset = 0
            let count = strlen(pointer)
            while offset < count {
                let written = write(fileDescriptor, pointer + offset, count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }

    /// The JSON line for one event (with the trailing newline). Reserved fields come first and
    /// win over a metadata key of the same name.
    static func line(
        time: Date, level: Logger.Level, label: String, message: String, source: String, metadata: Logger.Metadata
    ) -> String {
        var out = "{\"time\":\"\(time.formatted(Self.timeStyle))\",\"level\":\"\(level.rawValue)\",\"logger\":"
        appendString(label, to: &out)
        out += ",\"message\":"
        appendString(message, to: &out)
        out += ",\"source\":"
        appendString(source, to: &out)
        let reserved: Set = ["time", "level", "logger", "message", "source"]
        for key in metadata.keys.sorted() where !reserved.contains(key) {
            out += ","
            appendString(key, to: &out)
            out += ":"
            appendValue(metadata[key]!, to: &out)
        }
        out += "}\n"
        return out
    }

    static let timeStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    static func appendValue(_ value: Logger.Metadata.Value, to out: inout String) {
        switch value {
        case .string(let text): appendString(text, to: &out)
        case .stringConvertible(let convertible): appendString(convertible.description, to: &out)
        case .array(let values):
            out += "["
            for (index, element) in values.enumerated() {
                if index > 0 { out += "," }
                appendValue(element, to: &out)
            }
            out += "]"
        case .dictionary(let fields):
            out += "{"
            for (index, key) in fields.keys.sorted().enumerated() {
                if index > 0 { out += "," }
                appendString(key, to: &out)
                out += ":"
                appendValue(fields[key]!, to: &out)
            }
            out += "}"
        }
    }

    /// `text` as a JSON string literal (RFC 8259 escaping).
    static func appendString(_ text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

/// How a Baton process writes its logs: `BATON_LOG_FORMAT` (`json` or `text`) and
/// `BATON_LOG_LEVEL` (`info` by default).
public enum LogSetup {
    public enum Format: String, Sendable {
        /// One JSON object per line (``JSONLogHandler``): for servers, whose logs a pipeline reads.
        case json
        /// swift-log's plain lines: for a person at a terminal (`baton dev`).
        case text
    }

    /// Bootstraps swift-log once for the process, from the environment; returns the level.
    @discardableResult
    public static func bootstrap(
        defaultFormat: Format = .json, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> Logger.Level {
        let level = environment["BATON_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        let format = environment["BATON_LOG_FORMAT"].flatMap(Format.init(rawValue:)) ?? defaultFormat
        if format == .text {
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        } else {
            LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
        }
        return level
    }
}
