import BatonCore
import BatonEngine
import BatonHTTP
import BatonStore
import BatonTransport
import Foundation
import Hummingbird

/// The console's read-only pages: each builds a view (a dictionary the template reads) from the
/// same store and definitions the API serves.
extension Console {
    // MARK: - Overview

    func overview(_ context: BatonRequestContext) async throws -> Response {
        let now = Date.now
        let active = try await api.store.activeSagaCounts()
        let finished = try await api.store.finishedCounts(since: now - 3600)
        let stuck = try await api.store.stuckCounts(runningBefore: now - 600, awaitingSince: now - 60, retriesAbove: 3)
        let participants = await api.participants.snapshot()
        let deadLetters = try? await messaging.deadLetters(0)
        var view = base(context.identity, nav: "overview")
        view["inFlight"] = [SagaStatus.pending, .processing, .compensating, .suspended].map { status in
            ConsoleFormat.badge(status.rawValue).merging(["count": active[status] ?? 0]) { $1 }
        }
        view["lastHour"] = [SagaStatus.completed, .failed, .cancelled].map { status in
            ConsoleFormat.badge(status.rawValue).merging(["count": finished[status] ?? 0]) { $1 }
        }
        view["stuck"] = [
            ["label": "⚠ suspended, waiting for an operator", "filter": "suspended", "count": stuck.suspended],
            ["label": "↺ compensating", "filter": "compensating", "count": stuck.compensating],
            ["label": "◔ running for over 10 minutes", "filter": "running:10m", "count": stuck.runningLong],
            ["label": "… awaiting a reply for over 1 minute", "filter": "awaiting:1m", "count": stuck.awaitingLong],
            ["label": "↻ retried more than 3 times", "filter": "retries:3", "count": stuck.retriedOften],
        ]
        if let deadLetters { view["deadLetters"] = ["count": deadLetters.count] }
        view["messagingDown"] = participants.problem != nil && !participants.participants.isEmpty
        view["participants"] = participants.participants.map { status -> [String: Any] in
            let working = participants.hasWorker(status)
            return [
                "name": status.name, "hasConsumer": status.consumer != nil || participants.problem != nil,
                "pending": status.consumer?.pending as Any, "unacknowledged": status.consumer?.unacknowledged as Any,
                "working": working == true, "idle": working == false, "unknown": working == nil,
                "lastDelivery": ConsoleFormat.time(status.consumer?.lastDelivery) as Any,
                "actions": status.actions.joined(separator: ", "),
            ]
        }
        return pages.render("overview", view)
    }

    // MARK: - Sagas

    static let stuckKinds: [(value: String, label: String)] = [
        ("suspended", "suspended"), ("compensating", "compensating"), ("running:10m", "running over 10 minutes"),
        ("running:1h", "running over 1 hour"), ("awaiting:1m", "awaiting a reply over 1 minute"),
        ("retries:3", "retried more than 3 times"),
    ]

    func sagaList(_ request: Request, _ context: BatonRequestContext, rowsOnly: Bool) async throws -> Response {
        let parameters = request.uri.queryParameters
        func value(_ name: String) -> String? {
            guard let text = parameters[Substring(name)]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            return text
        }
        var list = SagaListQuery(limit: 50)
        var problem: String?
        do {
            if let status = value("status") {
                guard let known = SagaStatus(rawValue: status.uppercased()) else {
                    throw APIProblem.badRequest("unknown status '\(status.prefix(40))'")
                }
                list.statuses = [known]
            }
            if let workflow = value("workflow") {
                guard WorkflowDefinition.isName(workflow, limits: api.configuration.definitionLimits) else {
                    throw APIProblem.badRequest("'\(workflow.prefix(80))' is not a workflow name")
                }
                list.workflow = workflow
            }
            if let stuck = value("stuck") { list.stuck = [try api.stuckCondition(stuck)] }
            list.createdFrom = try value("created_after").map { try ConsoleFormat.parseTime($0, field: "created after") }
            list.createdBefore = try value("created_before").map { try ConsoleFormat.parseTime($0, field: "created before") }
            if let search = value("q") {
                guard search.count <= 255, !search.unicodeScalars.contains("\u{0}") else {
                    throw APIProblem.badRequest("search for at most 255 characters")
                }
                list.search = search
            }
            if let cursor = value("cursor") {
                do {
                    list.after = try SagaPageCursor(encoded: cursor)
                } catch { throw APIProblem.badRequest("this page link is no longer valid: start again from the first page") }
            }
        } catch let error as APIProblem {
            problem = error.detail
            list = SagaListQuery(statuses: [SagaStatus.pending], limit: 0)
        }
        var sagas: [SagaSummary] = []
        var next: SagaPageCursor?
        if problem == nil {
            let page = try await api.store.listSagas(list, now: .now)
            sagas = page.sagas
            next = page.next
        }
        var view = base(context.identity, nav: "sagas")
        view["sagas"] = sagas.map(sagaRow)
        if rowsOnly { return pages.render("saga-rows", view) }
        let kept = ["q", "status", "workflow", "stuck", "created_after", "created_before"].compactMap { name in
            value(name).map { (name, $0) }
        }
        view["query"] = [
            "q": value("q") ?? "", "createdAfter": value("created_after") ?? "", "createdBefore": value("created_before") ?? "",
        ]
        view["statuses"] = SagaStatus.allCases.map { ["value": $0.rawValue, "selected": list.statuses.contains($0)] }
        let names = try await api.store.latestDefinitions().map(\.definition.name)
        view["workflows"] = names.map { ["value": $0, "selected": $0 == list.workflow] }
        view["stuckKinds"] = Self.stuckKinds.map { ["value": $0.value, "label": $0.label, "selected": $0.value == value("stuck")] }
        view["rowsQuery"] = ConsoleFormat.query(kept + (value("cursor").map { [("cursor", $0)] } ?? []))
        if let next { view["nextPage"] = ConsoleFormat.query(kept + [("cursor", next.encoded)]) }
        if value("cursor") != nil { view["firstPage"] = ConsoleFormat.query(kept) + "&" }
        if let problem { view["error"] = problem }
        return pages.render("sagas", view, status: problem == nil ? .ok : .badRequest)
    }

    func sagaRow(_ saga: SagaSummary) -> [String: Any] {
        var row = ConsoleFormat.badge(saga.status.rawValue)
        row["id"] = saga.id
        row["shortID"] = String(saga.id.prefix(8)) + "…"
        row["workflow"] = saga.workflow
        row["version"] = saga.workflowVersion
        row["step"] = saga.currentStep
        row["created"] = ConsoleFormat.time(saga.createdAt)
        row["updated"] = ConsoleFormat.time(saga.updatedAt)
        row["error"] = saga.suspensionReason ?? saga.lastError ?? ""
        return row
    }

    // MARK: - One saga

    func sagaPage(
        _ id: String, _ context: BatonRequestContext, flash: String? = nil, error: String? = nil, status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let record = try await api.existingSaga(id)
        let saga = record.saga
        let definition = (try? await api.runner.definition(name: saga.workflow, version: saga.workflowVersion))
            .flatMap { $0.allSteps.count == saga.steps.count ? $0 : nil }
        let children = try await api.store.children(of: saga.id)
        let history = try await api.store.history(sagaID: saga.id, limit: 1000)
        var view = base(context.identity, nav: "sagas")
        view["flash"] = flash.flatMap(Self.flashes.index(forKey:)).map { Self.flashes.values[$0] } as Any
        view["error"] = error as Any
        view["saga"] = sagaFacts(record)
        view["warnings"] = await api.warnings(record, definition: definition)
        view["actions"] = actions(for: record, definition: definition, identity: context.identity)
        view["noActions"] =
            saga.status.isTerminal
            ? "The saga has finished: nothing is left to do." : "None of the actions you may take applies to the saga now."
        let timeline = SagaTimeline(
            steps: saga.steps.map(\.name), history: history.map(\.entry), createdAt: saga.createdAt, finishedAt: record.finishedAt,
            now: .now)
        view["timeline"] = timelineView(timeline, definition: definition, children: children)
        view["steps"] = saga.steps.enumerated().map { index, step -> [String: Any] in
            var row = ConsoleFormat.badge(step.status.rawValue).merging([
                "name": step.name, "attempt": step.attempt, "outcomeUnknown": step.outcomeUnknown,
                "compensationAttempt": step.compensationAttempt > 0 ? step.compensationAttempt : nil as Int? as Any,
                "kind": definition.map { ConsoleFormat.kind(of: $0.step(at: index)) } ?? "",
                "output": step.output.map(ConsoleFormat.pretty) as Any,
            ]) { $1 }
            if let branch = definition?.step(at: index).branch {
                row["group"] = branch.group
                row["branch"] = branch.name
            }
            if let error = step.error {
                row["error"] = [
                    "code": error.code, "message": error.message, "direction": error.direction.rawValue, "attempt": error.attempt,
                ]
            }
            return row
        }
        view["hasChildren"] = !children.isEmpty
        view["children"] = children.map { child in
            ConsoleFormat.badge(child.status.rawValue).merging(
                ["id": child.id, "step": child.step, "workflow": child.workflow, "version": child.workflowVersion]) { $1 }
        }
        view["hasSignals"] = !saga.signals.isEmpty
        view["signals"] = saga.signals.map { signal -> [String: Any] in
            let outcome: String =
                switch signal.outcome {
                case .succeeded(let payload): "succeeded: " + ConsoleFormat.pretty(payload)
                case .failed(let code, let message): "failed: \(code) \(message)"
                }
            return [
                "name": signal.name, "at": ConsoleFormat.time(signal.receivedAt) as Any, "by": signal.sentBy ?? "",
                "outcome": outcome, "consumedBy": signal.consumedBy ?? "not yet",
            ]
        }
        view["input"] = ConsoleFormat.pretty(saga.input)
        view["history"] = history.map { stored -> [String: Any] in
            let entry = stored.entry
            var row: [String: Any] = [
                "seq": stored.seq, "at": ConsoleFormat.time(entry.at) as Any, "kind": entry.kind.rawValue, "step": entry.step ?? "",
                "direction": entry.direction?.rawValue as Any, "attempt": entry.attempt as Any,
                "before": entry.statusBefore.rawValue, "after": entry.statusAfter.rawValue,
                "changed": entry.statusBefore != entry.statusAfter, "actor": entry.actor ?? "", "detail": entry.detail,
            ]
            if let json = ConsoleFormat.prettyIfJSON(entry.detail) {
                row["json"] = json
                row["summary"] = String(entry.detail.prefix(60)) + (entry.detail.count > 60 ? "…" : "")
            }
            return row
        }
        view["historyTruncated"] = record.historyLength > history.count
        view["historyShown"] = history.count
        return pages.render("saga", view, status: status)
    }

    static let flashes: [String: String] = [
        "retry": "Retry recorded: the stuck step is sent again.", "skip": "Skip recorded: the step is marked SKIPPED.",
        "resolve": "Resolve recorded.", "compensate": "Compensate recorded: the steps before the pivot are being undone.",
        "cancel": "Cancel recorded.", "signal": "Signal delivered.", "signal-duplicate": "That signal had been received already.",
    ]

    func sagaFacts(_ record: SagaRecord) -> [String: Any] {
        let saga = record.saga
        var facts = ConsoleFormat.badge(saga.status.rawValue).merging([
            "id": saga.id, "shortID": String(saga.id.prefix(8)), "workflow": saga.workflow, "version": saga.workflowVersion,
            "currentStep": saga.steps.indices.contains(saga.cursor) ? saga.steps[saga.cursor].name : "",
            "correlationID": saga.correlationID as Any, "idempotencyKey": record.idempotencyKey as Any,
            "traceID": ConsoleFormat.traceID(saga.traceparent) as Any,
            "created": ConsoleFormat.time(saga.createdAt) as Any, "updated": ConsoleFormat.time(saga.updatedAt) as Any,
            "finished": ConsoleFormat.time(record.finishedAt) as Any, "deadline": ConsoleFormat.time(saga.deadline) as Any,
            "suspensionReason": saga.suspensionReason as Any,
            "lastError": saga.lastError.flatMap { $0 == saga.suspensionReason ? nil : $0 } as Any,
            "direction": saga.direction == .compensation && !saga.status.isTerminal ? "compensating" : nil as String? as Any,
        ]) { $1 }
        if let parent = saga.parent { facts["parent"] = ["sagaID": parent.sagaID, "step": parent.step] }
        if let cancellation = saga.cancellation {
            facts["cancellation"] = ["by": cancellation.requestedBy ?? "", "reason": cancellation.reason]
        }
        return facts
    }

    /// The actions the caller may take on the saga now, each with what it does.
    func actions(for record: SagaRecord, definition: WorkflowDefinition?, identity: APIIdentity?) -> [[String: Any]] {
        let saga = record.saga
        let scopes = identity?.scopes ?? []
        var actions: [[String: Any]] = []
        func action(
            _ name: String, _ label: String, _ explain: String, confirm: String, path: String = "actions", danger: Bool = false,
            extra: [String: Any] = [:]
        ) {
            actions.append(
                [
                    "name": name, "label": label, "explain": explain, "confirm": confirm, "path": path, "danger": danger,
                    "sagaID": saga.id, "open": saga.status == .suspended && name == "retry",
                ].merging(extra) { $1 })
        }
        if saga.status == .suspended && scopes.contains(.operator) {
            let stuck = saga.steps.indices.contains(saga.cursor) ? [saga.steps[saga.cursor].name] : []
            action(
                "retry", "Retry", "The cause is fixed: send the stuck step (or its compensation) again, with a fresh retry budget.",
                confirm: "the participant can take this step again")
            action(
                "skip", "Skip a step", "The step's effect was done by hand, or is not needed: mark it SKIPPED and go on.",
                confirm: "the step's effect is settled by hand", extra: ["hasSteps": !stuck.isEmpty, "steps": stuck])
            action(
                "resolve", "Resolve",
                "Everything left was settled by hand: end the saga COMPLETED (moving forward) or FAILED (compensating).",
                confirm: "everything left is settled by hand", danger: true)
            action(
                "compensate", "Compensate", "Suspended at the pivot, and the pivot did not take effect: undo the steps before it.",
                confirm: "the pivot did not take effect", danger: true)
        }
        if !saga.status.isTerminal && scopes.contains(.sagasWrite) {
            action(
                "cancel", "Cancel", "Stop the saga and undo what it did (refused past the pivot).", confirm: "the saga should be undone",
                path: "cancel", danger: true)
        }
        if !saga.status.isTerminal && scopes.contains(.sagasSignal), let definition {
            let consumed = Set(saga.signals.filter { $0.consumedBy != nil }.map(\.name))
            let names = definition.allSteps.compactMap(\.signal).filter { !consumed.contains($0) }
            if !names.isEmpty {
                action(
                    "signal", "Send a signal", "Deliver a signal a step waits for, as a provider's callback would.",
                    confirm: "this is the event that happened", path: "signals", extra: ["isSignal": true, "signals": names])
            }
        }
        return actions
    }

    func timelineView(_ timeline: SagaTimeline, definition: WorkflowDefinition?, children: [ChildSagaSummary]) -> [String: Any] {
        let seconds = timeline.end.timeIntervalSince(timeline.start)
        let rows = timeline.rows.map { row -> [String: Any] in
            let index = definition?.stepIndex(named: row.step)
            let step = index.flatMap { definition?.step(at: $0) }
            var view: [String: Any] = [
                "step": row.step, "pivot": step?.pivot ?? false,
                "handler": index.map { definition?.isFailureHandler($0) ?? false } ?? false,
                "child": children.last(where: { $0.step == row.step })?.id as Any,
                "bars": row.bars.map { bar -> [String: Any] in
                    let end = bar.end ?? timeline.end
                    let what = bar.direction == .compensation ? "undo" : "action"
                    let label =
                        "\(row.step): \(what) attempt \(bar.attempt ?? 1), \(bar.outcome.rawValue.replacingOccurrences(of: "-", with: " ")), "
                        + "\(ConsoleFormat.duration(end.timeIntervalSince(bar.start)))\(bar.detail.isEmpty ? "" : " (\(bar.detail))")"
                    return [
                        "left": ConsoleFormat.percent(timeline.position(bar.start)), "width": ConsoleFormat.percent(timeline.width(bar)),
                        "outcome": bar.outcome.rawValue, "undo": bar.direction == .compensation, "label": label,
                        "symbol": ConsoleFormat.symbol(bar.outcome),
                    ]
                },
                "marks": row.marks.map { mark -> [String: Any] in
                    [
                        "left": ConsoleFormat.percent(timeline.position(mark.at)), "symbol": ConsoleFormat.symbol(mark.kind),
                        "label":
                            "\(row.step): \(mark.kind.rawValue.replacingOccurrences(of: "_", with: " "))\(mark.detail.isEmpty ? "" : ": \(mark.detail)")",
                    ]
                },
            ]
            if let branch = step?.branch {
                view["group"] = branch.group
                view["branch"] = branch.name
            }
            return view
        }
        return [
            "start": ConsoleFormat.time(timeline.start) as Any, "end": ConsoleFormat.time(timeline.end) as Any,
            "duration": ConsoleFormat.duration(seconds), "rows": rows,
        ]
    }

    // MARK: - Workflows

    func workflows(_ context: BatonRequestContext) async throws -> Response {
        var view = base(context.identity, nav: "workflows")
        view["workflows"] = try await api.store.latestDefinitions().map { stored -> [String: Any] in
            ["name": stored.definition.name, "version": stored.definition.version, "description": stored.definition.description]
        }
        return pages.render("workflows", view)
    }

    func workflow(_ request: Request, _ context: BatonRequestContext) async throws -> Response {
        let name = try context.parameters.require("name")
        guard WorkflowDefinition.isName(name, limits: api.configuration.definitionLimits) else {
            throw APIProblem.notFound("no workflow named '\(name.prefix(80))'")
        }
        let versions = try await api.store.definitionVersions(name: name)
        let wanted = request.uri.queryParameters["version"].flatMap { Int($0) }
        guard let stored = versions.first(where: { wanted == nil || $0.definition.version == wanted }) else {
            throw APIProblem.notFound(versions.isEmpty ? "no workflow named '\(name)'" : "\(name) has no version \(wanted ?? 0)")
        }
        let definition = stored.definition
        var view = base(context.identity, nav: "workflows")
        view["name"] = definition.name
        view["version"] = definition.version
        view["description"] = definition.description
        view["versions"] = versions.map {
            ["name": name, "version": $0.definition.version, "current": $0.definition.version == definition.version]
        }
        view["registered"] = ConsoleFormat.time(stored.registeredAt) as Any
        view["registeredBy"] = stored.registeredBy as Any
        view["hash"] = stored.contentHash
        view["deadline"] = definition.deadline?.description as Any
        view["source"] = stored.source ?? ConsoleFormat.pretty(.string(definition.name))
        var nodes: [[String: Any]] = []
        var index = 0
        while index < definition.steps.count {
            if let group = definition.parallelGroup(containing: index) {
                nodes.append([
                    "group": [
                        "name": group.name,
                        "branches": group.branches.map { branch -> [String: Any] in
                            let first = definition.steps[branch.lowerBound]
                            return [
                                "name": first.branch?.name ?? first.name, "when": first.branch?.when?.description as Any,
                                "steps": branch.map { flowStep(definition, $0) },
                            ]
                        },
                    ]
                ])
                index = group.range.upperBound
            } else {
                nodes.append(["step": flowStep(definition, index)])
                index += 1
            }
        }
        view["nodes"] = nodes
        let handlers = definition.onFailure ?? []
        view["hasHandlers"] = !handlers.isEmpty
        view["handlers"] = handlers.indices.map { flowStep(definition, definition.steps.count + $0) }
        view["simulation"] = try await simulation(of: definition, request) as Any
        return pages.render("workflow", view)
    }

    /// The workflow page's "What can happen" section, when asked for (`?simulate=1&runs=N&seed=S`):
    /// `baton workflows simulate` on the registered version.
    private func simulation(of definition: WorkflowDefinition, _ request: Request) async throws -> [String: Any]? {
        let query = request.uri.queryParameters
        guard query["simulate"] != nil else { return nil }
        let runs = try api.integer(request, "runs", default: 500, range: 1...BatonAPI.maximumSimulationRuns)
        var seed = WorkflowSimulator.randomSeed()
        if let text = query["seed"], !text.isEmpty {
            guard let number = WorkflowSimulator.seed(parsing: text) else {
                throw APIProblem.badRequest("seed must be a whole number from 0 to \(UInt64.max), got '\(text.prefix(40))'")
            }
            seed = number
        }
        let report = try await api.simulation(of: definition, WorkflowSimulator.Options(runs: runs, seed: seed))
        return [
            "runs": runs, "seed": String(seed), "passed": report.passed,
            "endStates": report.endStates.map { state -> [String: Any] in
                [
                    "description": state.description, "status": state.status.rawValue, "runs": state.runs,
                    "story": state.schedule.joined(separator: "\n"),
                ]
            },
            "violations": report.violations.map { violation -> [String: Any] in
                [
                    "invariant": violation.invariant.rawValue, "message": violation.message, "runs": violation.runs,
                    "story": violation.schedule.joined(separator: "\n"),
                ]
            },
            "findings": report.findings.map { finding -> [String: Any] in
                [
                    "kind": finding.kind.rawValue, "step": finding.step as Any, "message": finding.message, "runs": finding.runs as Any,
                    "story": (finding.schedule?.joined(separator: "\n")) as Any,
                ]
            },
            "hasFindings": !report.findings.isEmpty,
            "invariantCount": SagaInvariants.Invariant.allCases.count,
        ]
    }

    func flowStep(_ definition: WorkflowDefinition, _ index: Int) -> [String: Any] {
        let step = definition.step(at: index)
        var compensation: String?
        if let compensate = step.compensate {
            compensation =
                "\(step.participant).\(compensate.action) (timeout \(compensate.timeout), \(compensate.retry.maxAttempts) attempts)"
        } else if step.workflow != nil, let pivot = definition.pivotIndex, index < pivot {
            compensation = "compensate the child saga"
        } else if step.workflow != nil, definition.pivotIndex == nil, index < definition.steps.count {
            compensation = "compensate the child saga"
        }
        return [
            "name": step.name, "kind": ConsoleFormat.kind(of: step), "pivot": step.pivot, "timeout": step.timeout.description,
            "attempts": step.signal == nil ? step.retry.maxAttempts : nil as Int? as Any, "when": step.when?.description as Any,
            "compensation": compensation as Any,
        ]
    }

    // MARK: - Dead letters

    func deadLetters(_ context: BatonRequestContext) async throws -> Response {
        var view = base(context.identity, nav: "deadLetters")
        do {
            let (count, messages) = try await messaging.deadLetters(50)
            view["available"] = true
            view["count"] = count
            view["shown"] = messages.count
            view["messages"] = messages.map { message -> [String: Any] in
                func header(_ name: String) -> String? { message.headers[name]?.first }
                let headers = message.headers.sorted { $0.key < $1.key }.flatMap { name, values in values.map { "\(name): \($0)" } }
                let text = String(decoding: message.payload.prefix(64 * 1024), as: UTF8.self)
                return [
                    "sequence": message.sequence, "at": ConsoleFormat.time(message.storedAt) as Any,
                    "reason": header(WireProtocol.Header.deadLetterReason) ?? "(no reason given)",
                    "source": header(WireProtocol.Header.deadLetterSource) ?? "",
                    "originalSubject": header(WireProtocol.Header.deadLetterSubject) ?? message.subject,
                    "sagaID": header(WireProtocol.Header.sagaID).flatMap { SagaID.isValid($0) ? $0 : nil } as Any,
                    "headers": headers.joined(separator: "\n"), "payload": ConsoleFormat.prettyIfJSON(text) ?? text,
                ]
            }
        } catch {
            view["available"] = false
            view["problem"] = "\(error)"
        }
        return pages.render("dead-letters", view)
    }
}
