import ArgumentParser
import BatonClient
import BatonCore
import Foundation

/// `baton workflows …`: work with workflow definition files.
struct WorkflowsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflows",
        abstract: "Work with workflow definitions.",
        subcommands: [Validate.self, Simulate.self, List.self, Show.self, Push.self]
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
            let results = WorkflowFiles.load(try WorkflowFiles.required(paths))
            for result in results {
                switch result.outcome {
                case .success(let definition):
                    let hash = definition.contentHash.prefix(12)
                    var shape = ["\(definition.steps.count) steps"]
                    let groups = definition.parallelGroups.count
                    if groups > 0 { shape.append("\(groups) parallel group\(groups == 1 ? "" : "s")") }
                    let children = definition.allSteps.filter { $0.workflow != nil }.count
                    if children > 0 { shape.append("\(children) child saga\(children == 1 ? "" : "s")") }
                    let handlers = definition.failureHandlers.count
                    if handlers > 0 { shape.append("\(handlers) failure handler\(handlers == 1 ? "" : "s")") }
                    print("ok    \(result.file): \(definition.name) v\(definition.version), \(shape.joined(separator: ", ")), hash \(hash)")
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

    /// `baton workflows simulate [PATH…]`: what can happen to a workflow, before it ships.
    struct Simulate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a workflow's sagas through the state machine against misbehaving participants, and report what can happen.",
            discussion: """
                No server is needed. Each run draws the input, every participant's answer (succeeded, failed, retry, \
                no answer, a late or duplicate one, heartbeats), signals early and late, a cancel and the deadline \
                from the seed, so the same seed replays the same runs. The report lists every end state reached with \
                a shortest story, the invariants checked after every event, any violation, and the findings.

                --faults takes [PARTICIPANT:]KIND=RATE[,KIND=RATE…], applied in order; KIND is fail, retry, \
                retry-after, timeout, late, duplicate, heartbeat, compensation-fail or early, or (without a \
                participant) cancel or deadline. A signal step's participant is its signal, a child step's its workflow.

                Exits with status 1 when an invariant is violated, or with --strict when there is any finding.
                """
        )

        @Argument(help: "Definition files or directories.", completion: .file())
        var paths: [String] = ["workflows"]

        @Option(help: "Sagas to run per workflow (1 to \(WorkflowSimulator.maximumRuns)).")
        var runs = 1000

        @Option(help: "The seed; the same seed replays the same runs (default: a random one, printed).")
        var seed: UInt64?

        @Option(help: "Print one run's whole story instead of a report: the run's number, as the report names it (with its --seed).")
        var replay: Int?

        @Option(help: "Fault rates: [PARTICIPANT:]KIND=RATE[,KIND=RATE…] (repeatable).")
        var faults: [String] = []

        @Option(help: "The input of every saga, as JSON (default: drawn from the input schema).")
        var input: String?

        @Option(help: "A finding reviewed and accepted: KIND or KIND:STEP (repeatable); still reported, not failed by --strict.")
        var accept: [String] = []

        @Flag(help: "Exit with status 1 on any finding not accepted too.")
        var strict = false

        @Flag(help: "Print the reports as JSON.")
        var json = false

        func run() throws {
            guard (1...WorkflowSimulator.maximumRuns).contains(runs) else {
                throw ValidationError("--runs must be from 1 to \(WorkflowSimulator.maximumRuns), not \(runs)")
            }
            let faultSettings: SimulationFaults
            do {
                faultSettings = try SimulationFaults.parse(faults)
            } catch {
                throw ValidationError("--faults: \(error)")
            }
            let acceptances: [SimulationReport.Acceptance]
            do {
                acceptances = try accept.map { text throws(SimulationFaults.ParseError) in try SimulationReport.Acceptance(parsing: text) }
            } catch {
                throw ValidationError("--accept: \(error)")
            }
            var sagaInput: JSONValue?
            if let input {
                do {
                    sagaInput = try JSONParser.parse(Array(input.utf8))
                } catch {
                    throw ValidationError("--input is not JSON: \(error)")
                }
            }
            let files = try WorkflowFiles.required(paths)
            if let replay, !(1...WorkflowSimulator.maximumRuns).contains(replay) {
                throw ValidationError("--replay must be from 1 to \(WorkflowSimulator.maximumRuns), not \(replay)")
            }
            if replay != nil, seed == nil { throw ValidationError("--replay needs the --seed of the report that named the run") }
            let seed = seed ?? WorkflowSimulator.randomSeed()
            var failed = false
            var reports: [JSONValue] = []
            var summary: [String] = []
            for result in WorkflowFiles.load(files) {
                let definition: WorkflowDefinition
                switch result.outcome {
                case .success(let loaded): definition = loaded
                case .failure(let error):
                    failed = true
                    if json {
                        reports.append(["file": .string(result.file), "error": .string("\(error)")])
                    } else {
                        print("error \(result.file):")
                        for issue in error.issues { print("        \(issue)") }
                    }
                    summary.append("error \(result.file): not a valid definition")
                    continue
                }
                if let sagaInput, let problems = definition.input?.violations(of: sagaInput), !problems.isEmpty {
                    failed = true
                    let message = "--input does not fit \(definition.name)'s input schema: \(problems.joined(separator: "; "))"
                    if json {
                        reports.append(["file": .string(result.file), "error": .string(message)])
                    } else {
                        print("error \(result.file): \(message)")
                    }
                    summary.append("error \(result.file): \(message)")
                    continue
                }
                let options = WorkflowSimulator.Options(runs: runs, seed: seed, faults: faultSettings, input: sagaInput)
                if let replay {
                    let run = WorkflowSimulator(definition: definition).run(replay, options)
                    failed = failed || run.violation != nil
                    if json {
                        reports.append(Self.json(run, file: result.file))
                    } else {
                        print("== \(result.file): \(definition.name) v\(definition.version), run \(replay), seed \(seed)")
                        print("input \(run.input.canonicalJSON)")
                        run.schedule.forEach { print($0) }
                        print("end state: \(run.endState)")
                        if let violation = run.violation { print("VIOLATION \(violation.invariant.rawValue): \(violation.message)") }
                        for null in run.nullPlaceholders {
                            print("null-in-compensation [\(null.step)]: \(null.placeholder) when \(null.why)")
                        }
                        print("")
                    }
                    continue
                }
                var report = WorkflowSimulator(definition: definition).simulate(options)
                report.accept(acceptances)
                let fails = !report.passed || (strict && !report.openFindings.isEmpty)
                failed = failed || fails
                if json {
                    var object = report.json.objectValue ?? [:]
                    object["file"] = .string(result.file)
                    reports.append(.object(object))
                } else {
                    print("== \(result.file)")
                    print(report.text)
                    print("")
                }
                let violated = report.violations.count
                summary.append(
                    "\(fails ? "FAIL " : "ok   ") \(result.file): \(definition.name) v\(definition.version), \(report.endStates.count) end states, \(violated) violation\(violated == 1 ? "" : "s"), \(report.findings.count) finding\(report.findings.count == 1 ? "" : "s") (\(report.findings.count - report.openFindings.count) accepted)"
                )
            }
            if json {
                let key = replay == nil ? "reports" : "runs"
                print(JSONValue.object(["seed": .string(String(seed)), "passed": .bool(!failed), key: .array(reports)]).canonicalJSON)
            } else if replay == nil {
                summary.forEach { print($0) }
                print("seed \(seed): replay with --seed \(seed) --runs \(runs)")
            }
            if failed { throw ExitCode(1) }
        }
    }

    /// `baton workflows list`: what the server has registered.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the workflows the server has registered.")
        @OptionGroup var server: ServerOptions

        func run() async throws {
            let listed = try await server.client.get("/v1/workflows")
            if server.json {
                print(listed.canonicalJSON)
                return
            }
            var rows = [["NAME", "LATEST", "DESCRIPTION"]]
            if case .array(let workflows)? = listed.value(at: ["workflows"]) {
                for workflow in workflows {
                    rows.append(["name", "latest_version", "description"].map { Table.text(workflow.value(at: [$0])) })
                }
            }
            Table.print(rows)
        }
    }

    /// `baton workflows show NAME[@VERSION]`: one registered version, its steps in order.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a registered workflow version (the newest, or NAME@VERSION) and its steps.")
        @Argument(help: "The workflow's name, optionally with @VERSION.") var workflow: String
        @OptionGroup var server: ServerOptions

        func run() async throws {
            let parts = workflow.split(separator: "@", maxSplits: 1).map(String.init)
            let name = parts.first ?? ""
            var wanted: Int?
            if parts.count == 2 {
                guard let version = Int(parts[1]), version > 0 else {
                    throw ValidationError("'\(workflow)': the version after @ must be a whole number, as in \(name)@2")
                }
                wanted = version
            }
            let listed = try await server.client.get("/v1/workflows/\(name)")
            guard case .array(let versions)? = listed.value(at: ["versions"]),
                let shown = versions.first(where: { wanted == nil || $0.value(at: ["version"]) == .integer(Int64(wanted!)) })
            else {
                let known = (listed.value(at: ["versions"])?.arrayValue ?? []).map { Table.text($0.value(at: ["version"])) }
                throw ValidationError("\(name) has no version \(wanted ?? 0); it has \(known.joined(separator: ", "))")
            }
            if server.json {
                print(shown.canonicalJSON)
                return
            }
            print("workflow    \(Table.text(shown.value(at: ["name"]))) v\(Table.text(shown.value(at: ["version"])))")
            print("description \(Table.text(shown.value(at: ["description"])))")
            print("hash        \(Table.text(shown.value(at: ["hash"])))")
            print("registered  \(Table.text(shown.value(at: ["registered_at"]))) by \(Table.text(shown.value(at: ["registered_by"])))")
            print("versions    \(versions.map { Table.text($0.value(at: ["version"])) }.joined(separator: ", "))")
            print("")
            var rows = [["STEP", "DOES", "PIVOT", "UNDO", "PARALLEL"]]
            let definition = shown.value(at: ["definition"])
            let steps = definition?.value(at: ["steps"])?.arrayValue ?? []
            let handlers = definition?.value(at: ["onFailure"])?.arrayValue ?? []
            for (index, step) in (steps + handlers).enumerated() {
                let does: String =
                    if let signal = step.value(at: ["signal"])?.stringValue {
                        "waits for signal \(signal)"
                    } else if let child = step.value(at: ["workflow"])?.stringValue {
                        "starts a \(child) saga"
                    } else {
                        "\(Table.text(step.value(at: ["participant"]))).\(Table.text(step.value(at: ["action"])))"
                    }
                let branch = step.value(at: ["branch"]).flatMap { branch -> String? in
                    guard let group = branch.value(at: ["group"])?.stringValue else { return nil }
                    return "\(group) / \(Table.text(branch.value(at: ["name"])))"
                }
                rows.append([
                    Table.text(step.value(at: ["name"])) + (index >= steps.count ? " (on failure)" : ""), does,
                    step.value(at: ["pivot"]) == .bool(true) ? "pivot" : "",
                    step.value(at: ["compensate", "action"])?.stringValue ?? "", branch ?? "",
                ])
            }
            Table.print(rows)
        }
    }

    /// `baton workflows push FILE…`: validate and register definitions on the server.
    struct Push: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register workflow definitions on the server (each is validated there too).")
        @Argument(help: "Definition files or directories.", completion: .file()) var paths: [String]
        @OptionGroup var server: ServerOptions

        func run() async throws {
            let client = try server.client
            var failed = false
            for file in try WorkflowFiles.expand(paths) {
                let text = try String(contentsOfFile: file, encoding: .utf8)
                let contentType = file.hasSuffix(".json") ? "application/json" : "application/yaml"
                do {
                    let response = try await client.request("POST", "/v1/workflows", body: Data(text.utf8), contentType: contentType)
                    let what = "\(Table.text(response.body.value(at: ["name"]))) v\(Table.text(response.body.value(at: ["version"])))"
                    print(response.status == 201 ? "registered \(what) (\(file))" : "unchanged  \(what) (\(file))")
                } catch let failure as BatonClient.Failure {
                    print("refused    \(file): \(failure)")
                    failed = true
                }
            }
            if failed { throw ExitCode(1) }
        }
    }
}

extension WorkflowsCommand.Simulate {
    /// One replayed run as JSON.
    static func json(_ run: SimulationRun, file: String) -> JSONValue {
        var members: [String: JSONValue] = [
            "file": .string(file), "run": .integer(Int64(run.number)), "input": run.input, "end_state": .string(run.endState),
            "status": .string(run.status.rawValue), "schedule": .array(run.schedule.map(JSONValue.string)),
        ]
        if let violation = run.violation {
            members["violation"] = ["invariant": .string(violation.invariant.rawValue), "message": .string(violation.message)]
        }
        return .object(members)
    }
}
