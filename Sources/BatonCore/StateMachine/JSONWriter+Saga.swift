import Foundation

extension JSONWriter {
    /// A command as its `Codable` form writes it (the same keys, the deadline as seconds since the
    /// reference date), so `JSONDecoder` reads it back; without `JSONEncoder`'s cost.
    public mutating func value(_ command: StepCommand) {
        object { json in
            json.member("sagaID", command.sagaID)
            json.member("step", command.step)
            json.member("participant", command.participant)
            json.member("action", command.action)
            json.member("direction", command.direction.rawValue)
            json.member("attempt", command.attempt)
            json.member("idempotencyKey", command.idempotencyKey)
            json.key("deadline")
            json.number(command.deadline.timeIntervalSinceReferenceDate)
            json.key("payload")
            json.value(command.payload)
            if let correlationID = command.correlationID { json.member("correlationID", correlationID) }
            if let traceparent = command.traceparent { json.member("traceparent", traceparent) }
            if let workflow = command.workflow { json.member("workflow", workflow) }
            if let timeout = command.timeout { json.member("timeout", timeout.description) }
        }
    }

    /// A step error as its `Codable` form writes it.
    public mutating func value(_ error: StepError) {
        object { json in
            json.member("code", error.code)
            json.member("message", error.message)
            json.member("direction", error.direction.rawValue)
            json.member("attempt", error.attempt)
        }
    }
}
