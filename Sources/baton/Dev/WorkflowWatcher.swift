import BatonCore
import Foundation

/// `baton dev` watching its workflow files: when one changes (or one is added), the valid
/// definitions are handed to the server to register, where a version no saga has run takes the
/// new content. An invalid file is reported and left out; the server keeps what it had. A valid
/// one is simulated first (`baton workflows simulate`, a few hundred runs), so its author sees the
/// findings as they save.
struct WorkflowWatcher: Sendable {
    typealias Definitions = [(definition: WorkflowDefinition, source: String)]

    let paths: [String]
    var interval: Duration = .seconds(1)

    /// Each file's modification time and size: what changes when an editor saves it.
    func fingerprint() -> [String: String] {
        guard let files = try? WorkflowFiles.expand(paths) else { return [:] }
        var prints: [String: String] = [:]
        for file in files {
            let attributes = try? FileManager.default.attributesOfItem(atPath: file)
            let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            prints[file] = "\(modified)/\(attributes?[.size] as? Int ?? -1)"
        }
        return prints
    }

    /// The definitions in `files`, with a line said for each invalid file.
    static func changedDefinitions(_ files: [String], say: (String) -> Void) -> Definitions {
        var definitions: Definitions = []
        for result in WorkflowFiles.load(files) {
            switch result.outcome {
            case .success(let definition):
                guard let source = try? String(contentsOfFile: result.file, encoding: .utf8) else { continue }
                definitions.append((definition, source))
                say(simulationSummary(of: definition, file: result.file))
            case .failure(let error):
                say("baton dev: \(result.file) is not a valid workflow (the server keeps what it had):\n\(error)")
            }
        }
        return definitions
    }

    static let simulatedRuns = 300

    /// What a quick simulation of `definition` says: a line of counts, each finding, and the
    /// command that shows the stories.
    static func simulationSummary(of definition: WorkflowDefinition, file: String) -> String {
        let seed = WorkflowSimulator.randomSeed()
        let report = WorkflowSimulator(definition: definition).simulate(.init(runs: simulatedRuns, seed: seed))
        var lines = [
            "baton dev: \(definition.name) v\(definition.version) simulated (\(simulatedRuns) runs): \(report.endStates.count) end states, "
                + "\(report.violations.count) invariants violated, \(report.findings.count) findings"
        ]
        lines += report.violations.map { "    VIOLATION \($0.invariant.rawValue): \($0.message)" }
        lines += report.findings.map { "    \($0.kind.rawValue)\($0.step.map { " [\($0)]" } ?? ""): \($0.message)" }
        lines.append("    the stories: baton workflows simulate \(file) --runs \(simulatedRuns) --seed \(seed)")
        return lines.joined(separator: "\n")
    }

    /// Polls until cancelled, yielding the definitions of each change.
    func watch(_ continuation: AsyncStream<Definitions>.Continuation, say: @escaping @Sendable (String) -> Void) async {
        var last = fingerprint()
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let now = fingerprint()
            guard now != last else { continue }
            let changed = now.filter { last[$0.key] != $0.value }.keys.sorted()
            last = now
            guard !changed.isEmpty else { continue }
            say("baton dev: \(changed.joined(separator: ", ")) changed: registering")
            let definitions = Self.changedDefinitions(changed, say: say)
            if !definitions.isEmpty { continuation.yield(definitions) }
        }
        continuation.finish()
    }
}
