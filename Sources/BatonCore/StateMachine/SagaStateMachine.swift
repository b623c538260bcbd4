import Foundation

/// The saga state machine: `(saga, event) → (saga, effects)`, with no I/O.
///
/// Callers (the engine's services) load a saga, hand it one event with the current time and a
/// source of randomness, and execute the returned effects in one transaction. Everything Baton
/// promises about ordering, compensation and fencing is decided here, so it is tested without a
/// database.
///
/// Rules:
/// - Steps run in order; each attempt's command carries its attempt number, and only a reply or a
///   timer for the current attempt changes anything (others are recorded and ignored).
/// - A parallel group starts the first step of each branch at once (a branch whose condition does
///   not hold is skipped whole), runs each branch in order, and joins when every branch is done.
///   When a step of a branch fails for good, no other step starts: the steps under way are stopped
///   (outcome unknown, so compensated) and the saga compensates.
/// - A `retry` reply or a timeout is retried by the step's policy. Before the pivot, a `failed` reply
///   or a spent budget fails the step and the saga compensates; after the pivot every failure is
///   retried forward and a spent budget suspends the saga.
/// - Compensation runs in reverse order of completion over every step that `SUCCEEDED` or `TIMED_OUT`
///   (its outcome is unknown, so it may have taken effect) and has a compensation; never over a
///   succeeded pivot. Inside a parallel group, completion order is the order its steps completed in.
/// - A compensation that returns `failed` or spends its budget suspends the saga for an operator.
/// - Cancel and the saga deadline start compensation; both are refused once the pivot has succeeded
///   or while its outcome is unknown. A cancelled saga ends `CANCELLED` once compensated (by hand
///   too), not `FAILED`.
/// - `COMPLETED`, `FAILED` and `CANCELLED` absorb every later event.
public struct SagaStateMachine: Sendable {
    public let definition: WorkflowDefinition
    public private(set) var saga: SagaInstance
    /// Deliberate defects, empty in the product: the simulator's tests switch one on to prove that
    /// `baton workflows simulate` catches a broken state machine on the shipped workflows.
    @_spi(Mutations) public var mutations: Set<Mutation> = []

    /// - Parameters:
    ///   - definition: The definition the saga pinned.
    ///   - saga: The saga's current state.
    /// - Throws: ``DefinitionMismatchError`` when the definition is not the one the saga runs (another
    ///   workflow or version, or other steps): applying events against it could send wrong commands.
    public init(definition: WorkflowDefinition, saga: SagaInstance) throws(DefinitionMismatchError) {
        guard
            definition.name == saga.workflow,
            definition.version == saga.workflowVersion,
            definition.allSteps.map(\.name) == saga.steps.map(\.name)
        else {
            throw DefinitionMismatchError(
                sagaID: saga.id,
                expected: "\(saga.workflow) v\(saga.workflowVersion) with steps \(saga.steps.map(\.name))",
                given: "\(definition.name) v\(definition.version) with steps \(definition.allSteps.map(\.name))"
            )
        }
        self.definition = definition
        self.saga = saga
    }

    /// Applies one event.
    /// - Parameters:
    ///   - event: What happened.
    ///   - now: The current time (injected, so tests control it).
    ///   - random: The source of retry jitter.
    /// - Returns: Whether the event applied, and the effects to execute.
    public mutating func handle(
        _ event: SagaEvent,
        now: Date,
        random: inout some RandomNumberGenerator
    ) -> SagaTransition {
        var run = Run(now: now, statusBefore: saga.status)
        let outcome: SagaTransition.Outcome
        if saga.status.isTerminal && !event.isRequest {
            outcome = .ignored(.terminal, "the saga is already \(saga.status.rawValue)")
        } else {
            switch event {
            case .start: outcome = start(&run)
            case .reply(let reply): outcome = receive(reply, &run, &random)
            case .timerFired(let timer): outcome = fire(timer, &run, &random)
            case .cancel(let reason, let requestedBy): outcome = cancel(reason: reason, requestedBy: requestedBy, &run)
            case .operatorAction(let action): outcome = perform(action, &run)
            case .signal(let signal): outcome = receive(signal, &run)
            case .child(let report): outcome = receive(report, &run, &random)
            case .parentCompensates(let reason): outcome = compensateForParent(reason: reason, &run)
            }
        }
        switch outcome {
        case .applied:
            saga.updatedAt = now
        case .ignored(let reason, let detail):
            run.record(
                .ignored, saga, step: event.stepName, direction: event.direction, attempt: event.attempt,
                detail: "\(event.summary) ignored (\(reason.rawValue)): \(detail)")
        case .rejected(let reason):
            let kind: HistoryEntry.Kind =
                switch event {
                case .cancel, .parentCompensates: .cancelRefused
                case .signal: .signalRefused
                default: .operatorActionRefused
                }
            run.record(kind, saga, detail: "\(event.summary) refused: \(reason)")
        }
        return SagaTransition(outcome: outcome, effects: run.effects)
    }

    // MARK: - Events

    private mutating func start(_ run: inout Run) -> SagaTransition.Outcome {
        guard saga.status == .pending else {
            return .ignored(.duplicate, "the saga has already started")
        }
        saga.status = .processing
        saga.direction = .action
        run.record(.sagaStarted, saga, detail: "started workflow \(definition.name) v\(definition.version)")
        if let deadline = definition.deadline {
            let due = run.now + deadline
            saga.deadline = due
            run.effects.append(
                .scheduleTimer(SagaTimer(kind: .sagaDeadline, step: nil, direction: nil, attempt: 0, due: due))
            )
        }
        enter(0, &run)
        return .applied
    }

    private mutating func receive(
        _ reply: StepReply,
        _ run: inout Run,
        _ random: inout some RandomNumberGenerator
    ) -> SagaTransition.Outcome {
        guard let index = definition.stepIndex(named: reply.step) else {
            return .ignored(.notApplicable, "the workflow has no step '\(reply.step)'")
        }
        let step = saga.steps[index]
        let current = step.attempt(reply.direction)
        guard isCurrent(index, reply.direction), reply.attempt == current, step.awaitingReply else {
            if reply.attempt < current { return .ignored(.stale, "attempt \(current) is current") }
            if reply.attempt == current && current > 0 { return .ignored(.duplicate, "this attempt was already settled") }
            return .ignored(.notApplicable, "no such attempt was sent")
        }

        let direction = reply.direction
        switch reply.status {
        case .inProgress:
            let due = run.now + timeout(of: index, direction)
            saga.steps[index].replyDeadline = due
            run.effects.append(.scheduleTimer(stepTimeoutTimer(index, direction, attempt: current, due: due)))
            run.record(
                .heartbeat, saga, step: index, direction, attempt: current,
                detail: "participant is still working; timeout moved to \(due.iso8601)")
        case .succeeded(let output):
            settleAttempt(index, direction, &run)
            if direction == .action {
                saga.steps[index].outcomeUnknown = false
                saga.steps[index].status = .succeeded
                saga.steps[index].output = output
                saga.steps[index].error = nil
                saga.steps[index].finishedAt = run.now
                recordCompletion(index)
                run.record(.stepSucceeded, saga, step: index, direction, attempt: current, detail: "step succeeded")
                advance(after: index, &run)
            } else {
                saga.steps[index].status = .compensated
                saga.steps[index].finishedAt = run.now
                run.record(.stepCompensated, saga, step: index, direction, attempt: current, detail: "step compensated")
                compensateNext(&run)
            }
        case .failed(let code, let message):
            settleAttempt(index, direction, &run)
            if direction == .action { saga.steps[index].outcomeUnknown = false }
            let error = StepError(code: code, message: message, direction: direction, attempt: current)
            saga.steps[index].error = error
            // Why the saga is failing: an action's failure. A compensation's failure (the suspension
            // reason says what it means) and a failure handler's do not replace it.
            if direction == .action && !definition.isFailureHandler(index) { saga.lastError = "\(reply.step): \(code): \(message)" }
            run.record(
                .stepFailed, saga, step: index, direction, attempt: current,
                detail: "business failure \(code): \(message)")
            if definition.isFailureHandler(index) {
                failureHandlerGaveUp(index, timedOut: false, &run)
            } else if direction == .compensation {
                suspend("the compensation of step '\(reply.step)' failed (\(code): \(message))", &run)
            } else if isAfterPivot(index) && !mutations.contains(.compensatePastPivot) {
                // After the pivot there is no way back: a failure is retried forward like a
                // transient one, and a spent budget suspends the saga.
                retryOrGiveUp(index, direction, requestedDelay: nil, &run, &random)
            } else {
                fail(index, timedOut: false, &run)
            }
        case .retry(let after, let message):
            settleAttempt(index, direction, &run)
            saga.steps[index].error = StepError(code: "retry", message: message, direction: direction, attempt: current)
            retryOrGiveUp(index, direction, requestedDelay: after, &run, &random)
        }
        return .applied
    }

    private mutating func fire(
        _ timer: SagaTimer,
        _ run: inout Run,
        _ random: inout some RandomNumberGenerator
    ) -> SagaTransition.Outcome {
        switch timer.kind {
        case .sagaDeadline:
            return deadlineReached(&run)
        case .stepTimeout, .retryBackoff:
            guard let name = timer.step, let direction = timer.direction, let index = definition.stepIndex(named: name)
            else { return .ignored(.notApplicable, "the timer names no step of this workflow") }
            let step = saga.steps[index]
            let current = step.attempt(direction)
            guard isCurrent(index, direction), timer.attempt == current else {
                return .ignored(.stale, "attempt \(current) of \(saga.steps[saga.cursor].name) is current")
            }
            if timer.kind == .retryBackoff {
                guard step.retryAt != nil else { return .ignored(.stale, "the step is not waiting to retry") }
                dispatch(step: index, direction, &run)
                return .applied
            }
            guard let replyDeadline = step.replyDeadline else {
                return .ignored(.stale, "the attempt was already settled")
            }
            guard run.now >= replyDeadline else {
                return .ignored(.stale, "a heartbeat moved the timeout to \(replyDeadline.iso8601)")
            }
            saga.steps[index].replyDeadline = nil
            let limit = timeout(of: index, direction)
            if let signal = definition.step(at: index).signal {
                // Waiting has no effect: the outcome is known, nothing happened.
                saga.steps[index].error = StepError(
                    code: "timeout", message: "no signal '\(signal)' within \(limit)", direction: direction, attempt: current)
                run.record(.stepTimedOut, saga, step: index, direction, attempt: current, detail: "no signal '\(signal)' within \(limit)")
                retryOrGiveUp(index, direction, requestedDelay: nil, &run, &random)
                return .applied
            }
            if direction == .action { saga.steps[index].outcomeUnknown = true }
            let silence = definition.step(at: index).workflow == nil ? "no reply" : "no news of the child saga"
            saga.steps[index].error = StepError(
                code: "timeout",
                message: "\(silence) within \(limit)",
                direction: direction,
                attempt: current
            )
            run.record(
                .stepTimedOut, saga, step: index, direction, attempt: current,
                detail: "\(silence) within \(limit); the attempt's outcome is unknown")
            retryOrGiveUp(index, direction, requestedDelay: nil, &run, &random)
            return .applied
        }
    }

    private mutating func cancel(reason: String, requestedBy: String?, _ run: inout Run) -> SagaTransition.Outcome {
        switch saga.status {
        case .pending:
            saga.cancellation = SagaCancellation(reason: reason, requestedBy: requestedBy, at: run.now)
            run.record(.cancelRequested, saga, detail: "cancelled before it started: \(reason)")
            finish(.cancelled, &run)
            return .applied
        case .processing:
            if let refusal = pivotRefusal() { return .rejected(refusal) }
            saga.cancellation = SagaCancellation(reason: reason, requestedBy: requestedBy, at: run.now)
            run.record(.cancelRequested, saga, detail: "cancel requested: \(reason)")
            interrupt(because: "cancelled", &run)
            return .applied
        case .compensating:
            return .ignored(.notApplicable, "the saga is already compensating")
        case .suspended:
            return .rejected("the saga is SUSPENDED; use an operator action (retry, skip, resolve)")
        case .completed, .failed, .cancelled:
            return .rejected("the saga is already \(saga.status.rawValue)")
        }
    }

    private mutating func receive(_ signal: SagaSignal, _ run: inout Run) -> SagaTransition.Outcome {
        guard let index = definition.stepIndex(waitingFor: signal.name) else {
            return .rejected("the workflow has no step that waits for a signal named '\(signal.name)'")
        }
        if let earlier = saga.signals.first(where: { $0.name == signal.name && $0.key == signal.key }) {
            return .ignored(.duplicate, "signal '\(signal.name)' with this key was already received at \(earlier.receivedAt.iso8601)")
        }
        let name = saga.steps[index].name
        switch saga.status {
        case .completed, .failed, .cancelled:
            return .rejected("the saga is already \(saga.status.rawValue)")
        case .compensating:
            return .rejected("the saga is COMPENSATING: step '\(name)' will not wait for signal '\(signal.name)'")
        case .pending, .processing, .suspended:
            break
        }
        if saga.signals.contains(where: { $0.name == signal.name && $0.consumedBy == nil }) {
            return .rejected("another signal '\(signal.name)' is already kept for step '\(name)'")
        }
        let step = saga.steps[index]
        let waiting = isCurrent(index, .action) && saga.status == .processing && step.awaitingReply
        let mayWaitAgain = saga.status == .suspended && index == saga.cursor
        guard waiting || step.status == .pending || mayWaitAgain else {
            return .rejected("step '\(name)' is \(step.status.rawValue) and no longer waits for signal '\(signal.name)'")
        }
        var received = signal
        received.receivedAt = run.now
        received.consumedBy = nil
        saga.signals.append(received)
        run.record(
            .signalReceived, saga, step: index, .action,
            detail: waiting
                ? "signal '\(signal.name)' received" : "signal '\(signal.name)' received; kept until step '\(name)' waits for it")
        if waiting { consumeSignal(saga.signals.count - 1, step: index, &run) }
        return .applied
    }

    /// News of a step's child saga, taken as the reply to the attempt that waits for it: its end
    /// (or a refusal to start it) answers the action; its undoing (or a refusal to undo it) answers
    /// the compensation.
    private mutating func receive(
        _ report: ChildReport,
        _ run: inout Run,
        _ random: inout some RandomNumberGenerator
    ) -> SagaTransition.Outcome {
        guard let index = definition.stepIndex(named: report.step), let workflow = definition.step(at: index).workflow else {
            return .ignored(.notApplicable, "the workflow has no child step '\(report.step)'")
        }
        let step = saga.steps[index]
        let direction: StepDirection = step.status == .compensating ? .compensation : .action
        guard step.awaitingReply, isCurrent(index, direction), report.direction.map({ $0 == direction }) ?? true else {
            return .ignored(.stale, "step '\(report.step)' is not waiting for its child now")
        }
        let child = report.childID.map { "child saga \($0) (\(workflow))" } ?? "the child saga (\(workflow))"
        let status: ReplyStatus
        switch (direction, report.result) {
        case (.action, .completed(let output)): status = .succeeded(output: output)
        case (.action, .failed(let message)): status = .failed(code: "child_failed", message: "\(child) FAILED: \(message)")
        case (.action, .cancelled(let message)): status = .failed(code: "child_cancelled", message: "\(child) was CANCELLED: \(message)")
        case (_, .refused(let message)): status = .failed(code: "child_refused", message: "\(child): \(message)")
        case (.compensation, .failed), (.compensation, .cancelled): status = .succeeded(output: .null)
        case (.compensation, .completed):
            return .ignored(.notApplicable, "\(child) completed before it was asked to undo; its end after that will be reported")
        }
        return receive(StepReply(step: report.step, direction: direction, attempt: step.attempt(direction), status: status), &run, &random)
    }

    /// The parent compensates the step that started this saga: undo what it did, as a cancel would,
    /// and, when it already `COMPLETED` without passing a pivot, from its end.
    private mutating func compensateForParent(reason: String, _ run: inout Run) -> SagaTransition.Outcome {
        guard let parent = saga.parent else { return .rejected("the saga was not started by a parent saga") }
        let why = "parent saga \(parent.sagaID) compensates its step '\(parent.step)': \(reason)"
        switch saga.status {
        case .pending, .processing:
            return cancel(reason: why, requestedBy: nil, &run)
        case .compensating:
            return .ignored(.notApplicable, "the saga is already compensating")
        case .suspended:
            return .rejected("the saga is SUSPENDED; an operator must settle it before its parent can compensate it")
        case .failed, .cancelled:
            return .ignored(.notApplicable, "the saga is already \(saga.status.rawValue); nothing it did is left to undo")
        case .completed:
            if let refusal = pivotRefusal() { return .rejected(refusal) }
            saga.cancellation = SagaCancellation(reason: why, requestedBy: nil, at: run.now)
            run.record(.cancelRequested, saga, detail: "compensating after completion: \(why)")
            startCompensation(&run)
            return .applied
        }
    }

    private mutating func deadlineReached(_ run: inout Run) -> SagaTransition.Outcome {
        switch saga.status {
        case .pending:
            run.record(.deadlineReached, saga, detail: "the saga deadline passed before it started")
            finish(.failed, &run)
            return .applied
        case .processing:
            if let refusal = pivotRefusal() {
                return .ignored(.notApplicable, "deadline passed, but \(refusal)")
            }
            saga.lastError = "the saga deadline passed"
            run.record(.deadlineReached, saga, detail: "the saga deadline passed; compensating")
            interrupt(because: "the saga deadline passed", &run)
            return .applied
        case .compensating, .suspended, .completed, .failed, .cancelled:
            return .ignored(.notApplicable, "the saga is \(saga.status.rawValue); the deadline changes nothing")
        }
    }

    private mutating func perform(_ action: OperatorAction, _ run: inout Run) -> SagaTransition.Outcome {
        guard saga.status == .suspended else {
            return .rejected("operator actions apply to SUSPENDED sagas; this one is \(saga.status.rawValue)")
        }
        guard !action.reason.trimmingWhitespace().isEmpty else {
            return .rejected("an operator action needs a reason for the audit history")
        }
        let index = saga.cursor
        let stuck = saga.steps[index].name
        switch action {
        case .retry:
            saga.status = runningStatus
            saga.suspensionReason = nil
            // Moving forward again, the failure is behind it; compensating, it is still why.
            if saga.direction == .action { saga.lastError = nil }
            record(action, &run)
            if saga.direction == .action {
                saga.steps[index].attemptBudgetStart = saga.steps[index].attempt
            } else {
                saga.steps[index].compensationBudgetStart = saga.steps[index].compensationAttempt
            }
            dispatch(step: index, saga.direction, &run)
        case .skip(let step, _):
            guard step == stuck else {
                return .rejected("only the step the saga is stuck on ('\(stuck)') can be skipped, not '\(step)'")
            }
            saga.status = runningStatus
            saga.suspensionReason = nil
            if saga.direction == .action { saga.lastError = nil }
            record(action, &run)
            markSkipped(index, detail: "skipped by an operator: \(action.reason)", &run)
            if saga.direction == .action { advance(after: index, &run) } else { compensateNext(&run) }
        case .resolve:
            saga.suspensionReason = nil
            record(action, &run)
            if definition.isFailureHandler(index) {
                // The compensation is over: the handlers not yet run are passed over.
                for later in index..<saga.steps.count where saga.steps[later].status != .succeeded {
                    markSkipped(later, detail: "skipped by an operator: \(action.reason)", &run)
                }
                finish(compensatedStatus, &run)
            } else if saga.direction == .action {
                for later in index..<definition.steps.count
                where saga.steps[later].status != .succeeded && saga.steps[later].status != .skipped {
                    markSkipped(later, detail: "skipped by an operator: \(action.reason)", &run)
                }
                finish(.completed, &run)
            } else {
                // Every compensation still to run, wherever it stands: in a parallel group, steps
                // after the stuck one in step order may have completed before it.
                for remaining in definition.steps.indices
                where needsCompensation(remaining) || saga.steps[remaining].status == .compensating {
                    markSkipped(remaining, detail: "skipped by an operator: \(action.reason)", &run)
                }
                compensationFinished(&run)
            }
        case .compensate:
            guard saga.direction == .action, !isAfterPivot(index), !definition.isFailureHandler(index) else {
                return .rejected("compensate applies to a saga suspended at its pivot, before the pivot took effect")
            }
            saga.suspensionReason = nil
            record(action, &run)
            saga.steps[index].status = .failed
            saga.steps[index].finishedAt = run.now
            startCompensation(&run)
        }
        return .applied
    }

    // MARK: - Moves

    /// Sends the next attempt of a step's action or compensation and arms its timeout.
    private mutating func dispatch(step index: Int, _ direction: StepDirection, _ run: inout Run) {
        saga.cursor = index
        let definitionStep = definition.step(at: index)
        if let signal = definitionStep.signal {
            wait(for: signal, step: index, &run)
            return
        }
        if definitionStep.workflow != nil {
            askChild(step: index, direction, &run)
            return
        }
        let (attempt, due) = startAttempt(of: index, direction, &run)
        let step = saga.steps[index]
        let action = direction == .action ? definitionStep.action : definitionStep.compensate?.action ?? definitionStep.action
        let template = direction == .action ? definitionStep.payload : definitionStep.compensate?.payload ?? .null
        let payload = render(template)
        run.effects.append(
            .sendCommand(
                StepCommand(
                    sagaID: saga.id,
                    step: step.name,
                    participant: definitionStep.participant,
                    action: action,
                    direction: direction,
                    attempt: attempt,
                    idempotencyKey: StepCommand.idempotencyKey(sagaID: saga.id, step: step.name, direction: direction),
                    deadline: due,
                    payload: payload,
                    correlationID: saga.correlationID,
                    traceparent: saga.traceparent,
                    workflow: saga.workflow,
                    timeout: timeout(of: index, direction)
                )
            )
        )
        run.effects.append(.scheduleTimer(stepTimeoutTimer(index, direction, attempt: attempt, due: due)))
        run.record(
            .commandSent, saga, step: index, direction, attempt: attempt,
            detail: "sent \(definitionStep.participant).\(action) (attempt \(attempt))")
    }

    /// Starts the next attempt of step `index` in `direction`: counts it, marks the step running (or
    /// compensating), and sets when it times out.
    /// - Returns: The attempt's number and its timeout.
    private mutating func startAttempt(of index: Int, _ direction: StepDirection, _ run: inout Run) -> (attempt: Int, due: Date) {
        var step = saga.steps[index]
        if direction == .action {
            step.attempt += 1
            step.status = .running
        } else {
            step.compensationAttempt += 1
            step.status = .compensating
        }
        if step.startedAt == nil { step.startedAt = run.now }
        step.commandSentAt = run.now
        let due = run.now + timeout(of: index, direction)
        step.replyDeadline = due
        step.retryAt = nil
        saga.steps[index] = step
        return (step.attempt(direction), due)
    }

    /// A child step's attempt: no command; the engine starts the child after the commit (or, for a
    /// compensation, undoes it), and its news comes back as ``SagaEvent/child(_:)``. The step's
    /// timeout bounds the wait, and a retry asks again: the child's idempotency key makes every
    /// attempt find the same child, so a report lost in a crash is found by the next attempt.
    private mutating func askChild(step index: Int, _ direction: StepDirection, _ run: inout Run) {
        let definitionStep = definition.step(at: index)
        guard let workflow = definitionStep.workflow else { return }
        let (attempt, due) = startAttempt(of: index, direction, &run)
        let child = ChildSaga(step: saga.steps[index].name, workflow: workflow, input: render(definitionStep.payload))
        run.effects.append(direction == .action ? .startChild(child) : .compensateChild(child))
        run.effects.append(.scheduleTimer(stepTimeoutTimer(index, direction, attempt: attempt, due: due)))
        run.record(
            .childRequested, saga, step: index, direction, attempt: attempt,
            detail: direction == .action
                ? "asked for a saga of workflow \(workflow) (attempt \(attempt))"
                : "asked the child saga of workflow \(workflow) to undo what it did (attempt \(attempt))")
    }

    /// A payload template rendered over the saga as it is now.
    private func render(_ template: JSONValue) -> JSONValue {
        let context = TemplateContext(
            input: saga.input, stepOutputs: saga.stepOutputs, sagaID: saga.id, workflow: saga.workflow, correlationID: saga.correlationID)
        // Validated definitions hold only well-formed placeholders, so rendering cannot fail; the
        // fallback keeps a corrupt stored definition from stopping the saga silently.
        return (try? PayloadTemplate(template).render(context)) ?? .null
    }

    /// A signal step's attempt: no command, a wait with the step's timeout, and at once the signal
    /// if it came early.
    private mutating func wait(for signal: String, step index: Int, _ run: inout Run) {
        let (attempt, due) = startAttempt(of: index, .action, &run)
        run.effects.append(.scheduleTimer(stepTimeoutTimer(index, .action, attempt: attempt, due: due)))
        run.record(
            .signalAwaited, saga, step: index, .action, attempt: attempt, detail: "waiting for signal '\(signal)' until \(due.iso8601)")
        if let early = saga.signals.firstIndex(where: { $0.name == signal && $0.consumedBy == nil }) {
            consumeSignal(early, step: index, &run)
        }
    }

    /// Hands signal `position` to the signal step waiting for it, as that step's reply.
    private mutating func consumeSignal(_ position: Int, step index: Int, _ run: inout Run) {
        saga.signals[position].consumedBy = saga.steps[index].name
        let status: ReplyStatus =
            switch saga.signals[position].outcome {
            case .succeeded(let payload): .succeeded(output: payload)
            case .failed(let code, let message): .failed(code: code, message: message)
            }
        // A signal step has one attempt, so its failure never draws a retry delay: no jitter is used.
        var noJitter = SeededRandomNumberGenerator(seed: 0)
        _ = receive(
            StepReply(step: saga.steps[index].name, direction: .action, attempt: saga.steps[index].attempt, status: status), &run,
            &noJitter)
    }

    /// Stops waiting for the current attempt's reply.
    private mutating func settleAttempt(_ index: Int, _ direction: StepDirection, _ run: inout Run) {
        saga.steps[index].replyDeadline = nil
        run.effects.append(.cancelTimer(SagaTimer.Key(kind: .stepTimeout, step: saga.steps[index].name, direction: direction)))
    }

    /// After a transient failure: waits and tries again while the budget lasts, else gives up.
    private mutating func retryOrGiveUp(
        _ index: Int,
        _ direction: StepDirection,
        requestedDelay: SagaDuration?,
        _ run: inout Run,
        _ random: inout some RandomNumberGenerator
    ) {
        let step = saga.steps[index]
        let policy = retryPolicy(of: index, direction)
        let attempt = step.attempt(direction)
        let used = attempt - step.budgetStart(direction)
        let timedOut = step.outcomeUnknown
        guard used < policy.maxAttempts else {
            if definition.isFailureHandler(index) {
                failureHandlerGaveUp(index, timedOut: timedOut, &run)
            } else if direction == .compensation {
                suspend(
                    "the compensation of step '\(step.name)' failed \(used) times and spent its retry budget",
                    &run
                )
            } else if isAfterPivot(index) {
                saga.steps[index].status = timedOut ? .timedOut : .failed
                suspend("step '\(step.name)' after the pivot failed \(used) times and spent its retry budget", &run)
            } else if index == definition.pivotIndex && timedOut {
                // The pivot cannot be undone and its outcome is unknown: neither going back nor
                // forward is safe without a person checking.
                saga.steps[index].status = .timedOut
                suspend("the pivot '\(step.name)' spent its \(used) attempts and at least one timed out; its outcome is unknown", &run)
            } else {
                fail(index, timedOut: timedOut, &run)
            }
            return
        }
        let delay = requestedDelay.map { min($0, policy.maxDelay) } ?? policy.delay(after: used, using: &random)
        let due = run.now + delay
        saga.steps[index].retryAt = due
        run.effects.append(
            .scheduleTimer(SagaTimer(kind: .retryBackoff, step: step.name, direction: direction, attempt: attempt, due: due))
        )
        run.record(
            .retryScheduled, saga, step: index, direction, attempt: attempt,
            detail: "attempt \(attempt + 1) of \(policy.maxAttempts + step.budgetStart(direction)) in \(delay)")
    }

    /// A step before the pivot failed for good: mark it, stop the other branches when it is in a
    /// parallel group, and undo what may have taken effect.
    private mutating func fail(_ index: Int, timedOut: Bool, _ run: inout Run) {
        saga.steps[index].status = timedOut ? .timedOut : .failed
        saga.steps[index].finishedAt = run.now
        // A step whose outcome is unknown may have taken effect, so it is compensated too.
        if timedOut { recordCompletion(index) }
        if let error = saga.steps[index].error { saga.lastError = "\(saga.steps[index].name): \(error.message)" }
        if let placement = definition.steps[index].branch {
            stopRunningSteps(because: "branch '\(placement.name)' of group '\(placement.group)' failed", &run)
        }
        startCompensation(&run)
    }

    /// Cancel or deadline while running: the steps in hand stop, and everything that may have taken
    /// effect is compensated.
    private mutating func interrupt(because reason: String, _ run: inout Run) {
        stopRunningSteps(because: reason, &run)
        startCompensation(&run)
    }

    /// Stops every action under way (the cursor's, or each branch's in a parallel group): its timer
    /// is cancelled, and a late reply will be ignored. A command in flight may still take effect,
    /// so its step ends `TIMED_OUT` and is compensated; a wait for a signal has no effect, so its
    /// step ends `FAILED`.
    private mutating func stopRunningSteps(because reason: String, _ run: inout Run) {
        for index in saga.steps.indices where saga.steps[index].status == .running {
            let step = saga.steps[index]
            let outcomeUnknown: Bool
            if step.awaitingReply {
                run.effects.append(.cancelTimer(SagaTimer.Key(kind: .stepTimeout, step: step.name, direction: .action)))
                outcomeUnknown = definition.step(at: index).signal == nil
            } else if step.retryAt != nil {
                run.effects.append(.cancelTimer(SagaTimer.Key(kind: .retryBackoff, step: step.name, direction: .action)))
                outcomeUnknown = step.outcomeUnknown
            } else {
                outcomeUnknown = false
            }
            let detail = "\(reason) while the step was running\(outcomeUnknown ? "; its outcome is unknown" : "")"
            saga.steps[index].replyDeadline = nil
            saga.steps[index].retryAt = nil
            saga.steps[index].outcomeUnknown = outcomeUnknown
            saga.steps[index].status = outcomeUnknown ? .timedOut : .failed
            saga.steps[index].finishedAt = run.now
            saga.steps[index].error = StepError(code: "interrupted", message: detail, direction: .action, attempt: step.attempt)
            if outcomeUnknown { recordCompletion(index) }
            run.record(.stepInterrupted, saga, step: index, .action, attempt: step.attempt, detail: "stopped: \(detail)")
        }
    }

    /// After a step (or failure handler) is done with: the next one in its branch or the workflow,
    /// the join of its parallel group, or the end.
    private mutating func advance(after index: Int, _ run: inout Run) {
        var next = index + 1
        if definition.isFailureHandler(index) {
            if next < saga.steps.count { begin(step: next, &run) } else { finish(compensatedStatus, &run) }
            return
        }
        if let group = definition.parallelGroup(containing: index), let branch = group.branch(containing: index) {
            if next < branch.upperBound {
                begin(step: next, &run)
                return
            }
            // The branch is done; the group joins once every branch is.
            guard group.range.allSatisfy({ saga.steps[$0].status == .succeeded || saga.steps[$0].status == .skipped }) else { return }
            run.record(.parallelJoined, saga, detail: "parallel group '\(group.name)' joined: every branch is done")
            next = group.range.upperBound
        }
        if next < definition.steps.count { enter(next, &run) } else { finish(.completed, &run) }
    }

    /// Starts the step at `index` or, when a parallel group begins there, the first step of each of
    /// its branches (a branch whose condition does not hold is skipped whole).
    private mutating func enter(_ index: Int, _ run: inout Run) {
        guard let group = definition.parallelGroup(containing: index) else {
            begin(step: index, &run)
            return
        }
        let names = group.branches.compactMap { definition.steps[$0.lowerBound].branch?.name }
        run.record(.parallelStarted, saga, detail: "parallel group '\(group.name)' started: branches \(names.joined(separator: ", "))")
        for branch in group.branches {
            // A branch that failed as it started (a signal that came early, failed) stops the rest.
            guard saga.status == .processing, saga.direction == .action else { return }
            guard let placement = definition.steps[branch.lowerBound].branch, let condition = placement.when, !holds(condition) else {
                begin(step: branch.lowerBound, &run)
                continue
            }
            for step in branch {
                saga.cursor = step
                markSkipped(step, detail: "skipped: the condition of branch '\(placement.name)' does not hold (when: \(condition))", &run)
            }
            advance(after: branch.upperBound - 1, &run)
        }
    }

    /// Whether a condition holds over the saga's input and its steps so far.
    private func holds(_ condition: StepCondition) -> Bool {
        condition.holds(input: saga.input) { name in saga.steps.first(where: { $0.name == name }) }
    }

    /// Notes when a step of a parallel group completed (succeeded, or timed out for good), which
    /// orders its compensation.
    private mutating func recordCompletion(_ index: Int) {
        guard index < definition.steps.count, definition.steps[index].branch != nil else { return }
        saga.steps[index].completionOrder = (saga.steps.compactMap(\.completionOrder).max() ?? 0) + 1
    }

    /// Starts a step's (or failure handler's) action when its condition holds, and passes over it
    /// (`SKIPPED`, with the condition in the history) when it does not.
    private mutating func begin(step index: Int, _ run: inout Run) {
        if let condition = definition.step(at: index).when {
            guard holds(condition) else {
                saga.cursor = index
                markSkipped(index, detail: "skipped: its condition does not hold (when: \(condition))", &run)
                advance(after: index, &run)
                return
            }
        }
        dispatch(step: index, .action, &run)
    }

    /// A failure handler that failed for good is recorded and passed: it is never compensated, and
    /// the saga still ends as its compensation decided.
    private mutating func failureHandlerGaveUp(_ index: Int, timedOut: Bool, _ run: inout Run) {
        saga.steps[index].status = timedOut ? .timedOut : .failed
        saga.steps[index].finishedAt = run.now
        let error = saga.steps[index].error.map { " (\($0.code): \($0.message))" } ?? ""
        run.record(
            .failureHandlerFailed, saga, step: index, .action, attempt: saga.steps[index].attempt,
            detail: "the failure handler gave up\(error); the saga still ends \(compensatedStatus.rawValue)")
        advance(after: index, &run)
    }

    /// The compensation is over: the failure handlers run, if the workflow has any, and then the
    /// saga ends `FAILED` (or `CANCELLED`).
    private mutating func compensationFinished(_ run: inout Run) {
        guard !definition.failureHandlers.isEmpty else {
            finish(compensatedStatus, &run)
            return
        }
        saga.status = .compensating
        saga.direction = .action
        run.record(
            .failureHandlersStarted, saga,
            detail: "compensation is over; running the failure handlers before the saga ends \(compensatedStatus.rawValue)")
        begin(step: definition.steps.count, &run)
    }

    private mutating func startCompensation(_ run: inout Run) {
        saga.status = .compensating
        saga.direction = .compensation
        cancelDeadline(&run)
        run.record(.compensationStarted, saga, detail: "compensating completed steps in reverse order")
        compensateNext(&run)
    }

    /// Compensates the step that completed last among those still to compensate, or, when none is
    /// left, ends the compensation. Steps complete in step order, except inside a parallel group,
    /// whose steps complete in the order ``StepState/completionOrder`` records.
    private mutating func compensateNext(_ run: inout Run) {
        let last = definition.steps.indices.filter(needsCompensation).max { completionRank($0) < completionRank($1) }
        guard let last else {
            compensationFinished(&run)
            return
        }
        dispatch(step: last, .compensation, &run)
    }

    private func completionRank(_ index: Int) -> (Int, Int) {
        guard let group = definition.parallelGroup(containing: index) else { return (index, 0) }
        return (group.range.lowerBound, saga.steps[index].completionOrder ?? 0)
    }

    /// How a saga whose compensation is over ends: `CANCELLED` when a cancel started it, else
    /// `FAILED`.
    private var compensatedStatus: SagaStatus { saga.cancellation == nil ? .failed : .cancelled }

    /// Whether step `index` may have taken effect and has a way back: its compensation, or, for a
    /// child step before the pivot, its child's.
    private func needsCompensation(_ index: Int) -> Bool {
        let status = saga.steps[index].status
        let step = definition.steps[index]
        let undoable = step.compensate != nil || (step.workflow != nil && !isAfterPivot(index))
        if mutations.contains(.forgetTimedOutSteps) { return undoable && status == .succeeded }
        return undoable && (status == .succeeded || status == .timedOut)
    }

    private mutating func suspend(_ reason: String, _ run: inout Run) {
        saga.status = .suspended
        // The error stays the failure that led here: the reason is the suspension's own.
        saga.suspensionReason = reason
        saga.steps[saga.cursor].retryAt = nil
        saga.steps[saga.cursor].replyDeadline = nil
        cancelDeadline(&run)
        run.record(.sagaSuspended, saga, detail: "suspended: \(reason); an operator must retry, skip or resolve")
    }

    private mutating func finish(_ status: SagaStatus, _ run: inout Run) {
        saga.status = status
        saga.suspensionReason = nil
        cancelDeadline(&run)
        if status == .completed { saga.lastError = nil }
        let kind: HistoryEntry.Kind =
            switch status {
            case .completed: .sagaCompleted
            case .cancelled: .sagaCancelled
            default: .sagaFailed
            }
        let reason = status == .cancelled ? saga.cancellation.map { ": \($0.reason)" } ?? "" : ""
        run.record(kind, saga, detail: "saga \(status.rawValue)\(reason)")
        run.effects.append(.finished(status))
    }

    private mutating func markSkipped(_ index: Int, detail: String, _ run: inout Run) {
        saga.steps[index].status = .skipped
        saga.steps[index].replyDeadline = nil
        saga.steps[index].retryAt = nil
        saga.steps[index].finishedAt = run.now
        run.record(.stepSkipped, saga, step: index, saga.direction, detail: detail)
    }

    private func record(_ action: OperatorAction, _ run: inout Run) {
        run.record(
            .operatorAction, saga, step: saga.cursor, saga.direction,
            detail: "operator \(action.name): \(action.reason)")
    }

    private func cancelDeadline(_ run: inout Run) {
        guard saga.deadline != nil, run.statusBefore == .processing || run.statusBefore == .pending else { return }
        if !run.effects.contains(.cancelTimer(SagaTimer.Key(kind: .sagaDeadline))) {
            run.effects.append(.cancelTimer(SagaTimer.Key(kind: .sagaDeadline)))
        }
    }

    // MARK: - Facts

    /// The status a saga runs in at its cursor: `COMPENSATING` while it undoes steps or runs its
    /// failure handlers, `PROCESSING` otherwise.
    private var runningStatus: SagaStatus {
        saga.direction == .compensation || definition.isFailureHandler(saga.cursor) ? .compensating : .processing
    }

    /// Whether `index` is a step whose attempts in `direction` are the saga's work now: the
    /// cursor's, or, while a parallel group runs, those of any of its steps under way.
    private func isCurrent(_ index: Int, _ direction: StepDirection) -> Bool {
        guard direction == saga.direction else { return false }
        if direction == .action, saga.status == .processing, index < definition.steps.count, definition.steps[index].branch != nil {
            return saga.steps[index].status == .running
        }
        return index == saga.cursor
    }

    private func isAfterPivot(_ index: Int) -> Bool {
        guard let pivot = definition.pivotIndex else { return false }
        return index > pivot
    }

    /// Why cancel (or the deadline) may not start compensation now, if it may not.
    private func pivotRefusal() -> String? {
        guard let pivot = definition.pivotIndex else { return nil }
        let pivotName = definition.steps[pivot].name
        if saga.cursor > pivot || saga.steps[pivot].status == .succeeded {
            return "the saga is past its pivot '\(pivotName)' and can only move forward"
        }
        let pivotState = saga.steps[pivot]
        if saga.cursor == pivot && pivotState.awaitingReply {
            return "the pivot '\(pivotName)' is in flight and its outcome decides the saga"
        }
        if saga.cursor == pivot && pivotState.outcomeUnknown {
            return "an attempt of the pivot '\(pivotName)' timed out and may still take effect"
        }
        return nil
    }

    private func timeout(of index: Int, _ direction: StepDirection) -> SagaDuration {
        let step = definition.step(at: index)
        return direction == .action ? step.timeout : step.compensate?.timeout ?? step.timeout
    }

    private func retryPolicy(of index: Int, _ direction: StepDirection) -> RetryPolicy {
        let step = definition.step(at: index)
        return direction == .action ? step.retry : step.compensate?.retry ?? .defaultCompensation
    }

    private func stepTimeoutTimer(_ index: Int, _ direction: StepDirection, attempt: Int, due: Date) -> SagaTimer {
        SagaTimer(kind: .stepTimeout, step: saga.steps[index].name, direction: direction, attempt: attempt, due: due)
    }
}

extension SagaStateMachine {
    /// A defect the state machine can be told to have (``mutations``).
    @_spi(Mutations) public enum Mutation: String, Sendable, Hashable, CaseIterable {
        /// A business failure after the pivot compensates the steps before it instead of retrying
        /// forward.
        case compensatePastPivot = "compensate-past-pivot"
        /// A step whose attempt timed out (it may have taken effect) is left out of compensation.
        case forgetTimedOutSteps = "forget-timed-out-steps"
    }
}

/// A definition handed to the state machine that is not the one its saga runs.
public struct DefinitionMismatchError: Error, Sendable, Hashable, CustomStringConvertible {
    public var sagaID: String
    public var expected: String
    public var given: String

    public var description: String {
        "saga \(sagaID) runs \(expected), but was given \(given)"
    }
}

/// The effects gathered while one event is applied.
private struct Run {
    let now: Date
    let statusBefore: SagaStatus
    var effects: [SagaEffect] = []

    init(now: Date, statusBefore: SagaStatus) {
        self.now = now
        self.statusBefore = statusBefore
    }

    mutating func record(
        _ kind: HistoryEntry.Kind,
        _ saga: SagaInstance,
        step index: Int? = nil,
        _ direction: StepDirection? = nil,
        attempt: Int? = nil,
        detail: String
    ) {
        record(kind, saga, step: index.map { saga.steps[$0].name }, direction: direction, attempt: attempt, detail: detail)
    }

    mutating func record(
        _ kind: HistoryEntry.Kind,
        _ saga: SagaInstance,
        step: String?,
        direction: StepDirection?,
        attempt: Int?,
        detail: String
    ) {
        effects.append(
            .recordHistory(
                HistoryEntry(
                    kind: kind,
                    step: step,
                    direction: direction,
                    attempt: attempt,
                    statusBefore: statusBefore,
                    statusAfter: saga.status,
                    detail: detail,
                    at: now
                )
            )
        )
    }
}

extension StepState {
    func budgetStart(_ direction: StepDirection) -> Int {
        direction == .action ? attemptBudgetStart : compensationBudgetStart
    }
}

extension SagaEvent {
    /// Cancel and operator actions are requests someone waits on: they are refused with a reason
    /// rather than silently ignored.
    var isRequest: Bool {
        switch self {
        case .cancel, .operatorAction, .signal, .parentCompensates: true
        default: false
        }
    }

    var stepName: String? {
        switch self {
        case .reply(let reply): reply.step
        case .timerFired(let timer): timer.step
        default: nil
        }
    }

    var direction: StepDirection? {
        switch self {
        case .reply(let reply): reply.direction
        case .timerFired(let timer): timer.direction
        default: nil
        }
    }

    var attempt: Int? {
        switch self {
        case .reply(let reply): reply.attempt
        case .timerFired(let timer): timer.kind == .sagaDeadline ? nil : timer.attempt
        default: nil
        }
    }

    /// A short description, for history entries and logs.
    public var summary: String {
        switch self {
        case .start: "start"
        case .reply(let reply): "reply '\(reply.status.name)' to \(reply.step) \(reply.direction.rawValue) attempt \(reply.attempt)"
        case .timerFired(let timer): "timer \(timer.kind.rawValue)\(timer.step.map { " for \($0)" } ?? "") attempt \(timer.attempt)"
        case .cancel: "cancel"
        case .operatorAction(let action): "operator \(action.name)"
        case .signal(let signal): "signal '\(signal.name)'"
        case .child(let report): "news of the child saga of \(report.step)"
        case .parentCompensates: "compensation asked by the parent saga"
        }
    }
}

extension ReplyStatus {
    /// The status as it appears on the wire.
    public var name: String {
        switch self {
        case .succeeded: "succeeded"
        case .failed: "failed"
        case .retry: "retry"
        case .inProgress: "in_progress"
        }
    }
}

extension Date {
    var iso8601: String { formatted(.iso8601) }
}
