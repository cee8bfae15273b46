/// One finished attempt, ready to be recorded (`WorkQueue.record`).
struct CompletedAttempt: Sendable {
    var row: ClaimedRow
    var classification: Classification
    var nextAttemptAt: Double?
    var startedAt: Double
    var endedAt: Double
    var latencyMS: Double
    var httpStatus: Int?
    var reply: [UInt8]?
    /// The key that verified the reply, when it was trusted.
    var signingKey: SigningKey?
}
