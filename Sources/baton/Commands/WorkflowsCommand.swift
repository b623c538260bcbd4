import ArgumentParser
import BatonCore
import Foundation

/// `baton workflows …`: work with workflow definition files.
struct WorkflowsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflows",
        abstract: "Work with workflow definitions.",
        subcommands: [Validate.self]
    )

    /// `baton workflows validate [PATH…]`.
    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check workflow definition files and print each one's result.",
            discussion: """
                Each PATH is a .yaml, .yml or .json file, or a directory whose such files are all checked.
                Exits with status 1 when any definition has an error.
                """
        )

        @Argument(help: "Definition files or directories.", completion: .file())
        var paths: [String] = ["workflows"]

        func run() throws {
            let files: [String]
            do {
                files = try WorkflowFiles.expand(paths)
            } catch {
                throw ValidationError("\(error)")
            }
            guard !files.isEmpty else {
                throw ValidationError("no .yaml, .yml or .json files in \(paths.joined(separator: ", "))")
            }
            let results = WorkflowFiles.load(files)
            for result in results {
                switch result.outcome {
                case .success(let definition):
                    let hash = definition.contentHash.prefix(12)
                    print("ok    \(result.file): \(definition.name) v\(definition.version), \(definition.steps.count) steps, hash \(hash)")
                case .failure(let error):
                    print("error \(result.file):")
                    for issue in error.issues { print("        \(issue)") }
                }
            }
            let failures = results.filter { if case .failure = $0.outcome { true } else { false } }.count
            print("\(results.count - failures) valid, \(failures) invalid")
            if failures > 0 { throw ExitCode(1) }
        }
    }
}
