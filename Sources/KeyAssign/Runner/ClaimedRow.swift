/// A row taken by the claimer, as it is about to be sent.
package struct ClaimedRow: Sendable {
    package var id: Int64
    package var request: AssignRequest
    /// Attempts including this one (the claim counts it; a 429 or auth stop refunds it).
    package var attempts: Int
    /// Whether an earlier attempt may have reached the server without a verified answer.
    package var maybeDelivered: Bool
    package var claimedAt: Double
}
