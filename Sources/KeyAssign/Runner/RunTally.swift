/// What a run counts as it records attempts: the progress line and the summary read it.
package struct RunTally: Sendable {
    /// Requests sent (every claimed row, 429s included).
    package var requests = 0
    /// Attempts that left their row in a final state.
    package var finished = 0
    package var outcomes: [AttemptOutcome: Int] = [:]
    /// Rows per final state they reached (they add up to `finished`): the progress line's counts.
    package var finalStates: [WorkState: Int] = [:]
    /// Replies that failed verification.
    package var untrusted = 0
    package var rateLimited = 0

    /// One recorded attempt.
    mutating func count(_ classification: Classification) {
        outcomes[classification.outcome, default: 0] += 1
        if WorkState.finalStates.contains(classification.state) {
            finished += 1
            finalStates[classification.state, default: 0] += 1
        }
        if classification.rateLimited { rateLimited += 1 }
    }
}
