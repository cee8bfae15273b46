/// What a run counts as it records attempts: the progress line and the summary read it.
struct RunTally: Sendable {
    /// Requests sent (every claimed row, 429s included).
    var requests = 0
    /// Attempts that left their row in a final state.
    var finished = 0
    var outcomes: [AttemptOutcome: Int] = [:]
    /// Rows per final state they reached (they add up to `finished`): the progress line's counts.
    var finalStates: [WorkState: Int] = [:]
    /// Replies that failed verification.
    var untrusted = 0
    var rateLimited = 0

    /// One recorded attempt.
    mutating func count(_ classification: Classification) {
        outcomes[classification.outcome, default: 0] += 1
        switch classification.state {
        case .assigned, .rejected, .uncertain, .failed:
            finished += 1
            finalStates[classification.state, default: 0] += 1
        default: break
        }
        if classification.rateLimited { rateLimited += 1 }
    }
}
