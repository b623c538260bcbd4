import BatonStore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Where retention writes sagas before it removes them: JSON Lines files in a directory, one
/// saga per line, one file per day and process (`sagas-2026-12-01-host-1234.jsonl`), so that
/// replicas sharing a directory never write to the same file.
///
/// A batch is on disk (`fsync`) before the transaction that deletes it commits. A crash between
/// the two writes the batch again on the next sweep: a reader keeps the last line of each saga id.
public struct SagaArchive: Sendable {
    public let directory: URL
    let host: String
    let process: Int32

    public init(directory: URL) {
        self.directory = directory
        self.host = ProcessInfo.processInfo.hostName.filter { $0.isLetter || $0.isNumber || $0 == "-" }.prefix(64).description
        self.process = ProcessInfo.processInfo.processIdentifier
    }

    /// The directory exists and takes files: checked at start, so that a wrong path stops the
    /// server instead of every sweep.
    public func prepare() throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        guard FileManager.default.isWritableFile(atPath: directory.path) else {
            throw ArchiveError(description: "the archive directory \(directory.path) is not writable")
        }
    }

    /// The file a batch archived at `date` goes to.
    func file(at date: Date) -> URL {
        let day = date.formatted(Date.ISO8601FormatStyle(timeZone: .gmt).year().month().day())
        return directory.appending(path: "sagas-\(day)-\(host.isEmpty ? "host" : host)-\(process).jsonl")
    }

    /// Appends the batch, one line per saga, and waits until it is on disk.
    public func append(_ batch: [ArchivedSaga], at date: Date = .now) throws {
        let url = file(at: date)
        let created = !FileManager.default.fileExists(atPath: url.path)
        if created {
            guard FileManager.default.createFile(atPath: url.path, contents: nil) else { throw ArchiveError(url, "cannot create it") }
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        try handle.seekToEnd()
        var data = Data()
        for saga in batch {
            data.append(contentsOf: saga.document.utf8)
            data.append(0x0A)
        }
        try handle.write(contentsOf: data)
        try handle.synchronize()
        // A new file's name is durable only once its directory is.
        if created { syncDirectory() }
    }

    private func syncDirectory() {
        let descriptor = open(directory.path, O_RDONLY)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        _ = close(descriptor)
    }
}

/// The archive cannot take a batch: nothing of it is removed.
public struct ArchiveError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(description: String) { self.description = description }
    init(_ url: URL, _ reason: String) { description = "cannot archive to \(url.path): \(reason)" }
}
