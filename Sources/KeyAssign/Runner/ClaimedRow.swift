/// A row taken by the claimer, as it is about to be sent.
struct ClaimedRow: Sendable {
    var id: Int64
    var request: AssignRequest
    /// Attempts including this one (the claim counts it; a 429 or auth stop refunds it).
    var attempts: Int
    /// Whether an earlier attempt may have reached the server without a verified answer.
    var maybeDelivered: Bool
    var claimedAt: Double
}
