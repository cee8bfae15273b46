/// An invariant a scenario broke, with what the simulator saw.
public struct SimulationViolation: Sendable, Equatable, CustomStringConvertible {
    public enum Invariant: String, Sendable, CaseIterable {
        /// A row a dead run left in flight was sent again, although the server already held
        /// its key for our buyer and a listing could have said so (the race rule).
        case resentBeforeReconcile = "resent-before-reconcile"
        /// A row sent again after a verified 800 for it.
        case resentAfterAssigned = "resent-after-assigned"
        /// A row missing, or left `in_flight` by a run that ended normally.
        case rowLost = "row-lost"
        /// After the clean night's reconciliation a row's state is false against the server.
        case falseState = "false-state"
        /// A row reads `rejected` although the server holds its key for our buyer.
        case assignedReadsRejected = "assigned-reads-rejected"
        /// A row reads `failed` although the server holds its key for our buyer (issue 18's rule).
        case assignedReadsFailed = "assigned-reads-failed"
        /// More requests left in some window than `capacity + rate × window`.
        case rateExceeded = "rate-exceeded"
        /// A request left during a pause the server asked for with Retry-After.
        case sentDuringPause = "sent-during-pause"
        /// A pause without Retry-After longer than the waves of 429s in a row allow.
        case pauseNotPerWave = "pause-not-per-wave"
        /// An attempt the server acted on was refunded (not counted towards --max-attempts).
        case refundedButProcessed = "refunded-but-processed"
        /// An attempt that reached the server, without a verified answer, left the row not
        /// maybe-delivered.
        case deliveredNotMarked = "delivered-not-marked"
        /// `work.attempts` moved by other than the attempts the run recorded as counting.
        case attemptsMiscounted = "attempts-miscounted"
        /// The run waited for an event that could never come, or never ended.
        case stuck
    }

    public var invariant: Invariant
    public var detail: String
    /// Simulated seconds since the scenario began.
    public var at: Double

    public var description: String { "[\(invariant.rawValue)] at \(String(format: "%.3f", at)) s: \(detail)" }
}
