/// One finished attempt, ready to be recorded (`WorkQueue.record`).
package struct CompletedAttempt: Sendable {
    package var row: ClaimedRow
    package var classification: Classification
    package var nextAttemptAt: Double?
    package var startedAt: Double
    package var endedAt: Double
    package var latencyMS: Double
    package var httpStatus: Int?
    package var reply: [UInt8]?
    /// The key that verified the reply, when it was trusted.
    package var signingKey: SigningKey?
}
