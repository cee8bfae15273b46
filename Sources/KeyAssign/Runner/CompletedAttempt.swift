/// One finished attempt, ready to be recorded (`WorkQueue.record`).
package struct CompletedAttempt: Sendable {
    package var row: ClaimedRow
    package var classification: Classification
    package var nextAttemptAt: Double?
    package var startedAt: Double
    package var endedAt: Double
    package var latencyMS: Double
    package var httpStatus: Int?
    /// What is kept of the reply when it is not kept compact (`ReplyRedaction`).
    package var reply: [UInt8]?
    /// The key that verified the reply, when it was trusted.
    package var signingKey: SigningKey?
    /// A trusted reply, kept as what its signature covers (`reply` is then nil).
    package var signedReply: CompactReply? = nil
}
