/// A row's state in `work.state`: part of keyassign's interface (see docs/states.md); the
/// schema's CHECK constraint holds the same list.
public enum WorkState: String, Sendable, CaseIterable, Codable {
    case pending
    case inFlight = "in_flight"
    case retry
    case assigned
    case rejected
    case uncertain
    case failed

    /// States a run leaves a row in for good (until `keyassign retry`).
    public static let finalStates: Set<WorkState> = [.assigned, .rejected, .uncertain, .failed]
}
