import Foundation
import Testing

/// `baton workflows validate`, run as the built executable: what it prints and how it exits.
@Suite("baton workflows validate")
struct WorkflowsValidateCommandTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The `baton` binary sits in the build directory beside the test bundle (on Linux the bundle URL
    /// is that directory; on macOS it is the `.xctest` bundle inside it).
    static var executable: URL {
        let candidates = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
            .map { $0.appendingPathComponent("baton") }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
    }

    struct Run {
        var status: Int32
        var output: String
    }

    func baton(_ arguments: String...) throws -> Run { try baton(arguments) }

    /// - Parameter environment: Added to this process's environment.
    func baton(_ arguments: [String], environment: [String: String] = [:]) throws -> Run {
        let process = Process()
        process.executableURL = Self.executable
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, added in added }
        }
        process.currentDirectoryURL = Self.repositoryRoot
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    func temporaryDirectory(_ files: [String: String]) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("baton-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (name, text) in files {
            try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        return directory
    }

    @Test("the shipped workflows validate, and the command exits 0")
    func shippedWorkflows() throws {
        let run = try baton("workflows", "validate")
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("ok    workflows/funds-transfer.yaml: funds-transfer v3, 6 steps, 2 failure handlers"))
        #expect(run.output.contains("ok    workflows/checkout.yaml: checkout v3, 4 steps"))
    }

    @Test("an invalid file is reported with its step and field, and the command exits 1")
    func invalidFile() throws {
        let directory = try temporaryDirectory([
            "good.json": #"{"name": "good", "version": 1, "steps": [{"name": "a", "participant": "p", "action": "x"}]}"#,
            "bad.yaml": "name: bad\nversion: 1\nsteps:\n  - { name: a, participant: p, action: x, timeout: 5 }\n",
            "notes.txt": "not a definition",
        ])
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = try baton("workflows", "validate", directory.path)
        #expect(run.status == 1)
        #expect(run.output.contains("ok    \(directory.path)/good.json: good v1"))
        #expect(run.output.contains("error \(directory.path)/bad.yaml:"))
        #expect(run.output.contains("step 'a': timeout: bad duration '5'"))
        #expect(run.output.contains("1 valid, 1 invalid"))
        #expect(!run.output.contains("notes.txt"))
    }

    @Test("two files defining the same name and version are an error")
    func duplicateVersions() throws {
        let definition = "name: twice\nversion: 3\nsteps:\n  - { name: a, participant: p, action: x }\n"
        let directory = try temporaryDirectory(["one.yaml": definition, "two.yaml": definition])
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = try baton("workflows", "validate", directory.path)
        #expect(run.status == 1)
        #expect(run.output.contains("version: twice v3 is already defined in \(directory.path)/one.yaml"))
    }

    @Test("a missing path is an error that names it")
    func missingPath() throws {
        let run = try baton("workflows", "validate", "no/such/dir")
        #expect(run.status != 0)
        #expect(run.output.contains("no such file or directory: no/such/dir"))
    }
}
