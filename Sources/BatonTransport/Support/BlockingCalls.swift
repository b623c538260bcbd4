import Foundation
import NIOPosix

/// Where libnats' blocking calls run: connecting, publishing to JetStream (waiting for the ack),
/// fetching from a pull consumer (waiting for messages).
///
/// They must never run on Swift's cooperative pool, which has one thread per core (two here): a
/// blocked fetch there would stall every task in the process. A NIO thread pool of its own keeps
/// them apart, sized so that a publisher and several consumers can wait at once.
enum BlockingCalls {
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 16)
        pool.start()
        return pool
    }()

    static func run<Result: Sendable>(_ body: @escaping @Sendable () throws -> Result) async throws -> Result {
        try await pool.runIfActive(body)
    }
}

extension Duration {
    /// Whole milliseconds, for libnats' timeouts.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// Whole nanoseconds, for JetStream's configuration fields.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// C strings that live until the arena is released: libnats' configuration structs hold plain
/// `const char *` fields that must outlive the call that reads them.
final class CStringArena {
    private var strings: [UnsafeMutablePointer<CChar>] = []

    func make(_ text: String) -> UnsafePointer<CChar> {
        let copy = strdup(text)!
        strings.append(copy)
        return UnsafePointer(copy)
    }

    func make(_ text: String?) -> UnsafePointer<CChar>? { text.map { make($0) } }

    /// An array of C strings (for `Subjects`), owned by the arena.
    func array(_ texts: [String]) -> UnsafeMutablePointer<UnsafePointer<CChar>?> {
        let array = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: max(texts.count, 1))
        for (index, text) in texts.enumerated() { array[index] = make(text) }
        arrays.append(UnsafeMutableRawPointer(array))
        return array
    }

    private var arrays: [UnsafeMutableRawPointer] = []

    deinit {
        for string in strings { free(string) }
        for array in arrays { array.deallocate() }
    }
}
