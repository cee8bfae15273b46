/// The runner's side of `EarlyStop`: holds the rows of wrong-server replies until the run
/// knows whether a license server answers at all, and turns them back to `pending` (refunded)
/// when none does. Replies that fail verification are recorded as they are (maybe delivered);
/// the run parks those rows `uncertain` once it has stopped (`CarryOver.parkMaybeDelivered`).
/// Pure; the runner calls it under its lock, like `RefusalGate`.
struct EarlyStopGate: Sendable {
    private(set) var early = EarlyStop()
    private var held: [CompletedAttempt] = []
    let keys: [SigningKey]
    let maxClockSkew: Double?
    let url: String

    init(keys: [SigningKey], maxClockSkew: Double?, url: String) {
        self.keys = keys
        self.maxClockSkew = maxClockSkew
        self.url = url
    }

    /// The stop the run ended with, when it was for verification (signature or clock).
    var verificationStop: EarlyStop.Kind? {
        early.stopped == .wrongServer ? nil : early.stopped
    }

    /// One attempt: what to record now, and the stop message the first time the run must stop.
    mutating func admit(_ attempt: CompletedAttempt, _ observation: EarlyStop.Observation) -> (
        record: [CompletedAttempt], stop: String?
    ) {
        switch early.observe(observation) {
        case .proceed:
            var record: [CompletedAttempt] = []
            if observation == .verified {
                // Someone answers at this URL: each held reply was its own row's.
                record = held
                held.removeAll()
            }
            record.append(attempt)
            return (record, nil)
        case .hold:
            held.append(attempt)
            return ([], nil)
        case .stop(let kind, let first):
            let message = early.message(kind, keys: keys, maxClockSkew: maxClockSkew, url: url)
            guard kind == .wrongServer else { return ([attempt], first ? message : nil) }
            let refunded = (held + [attempt]).map { Self.refund($0, message: message) }
            held.removeAll()
            return (refunded, first ? message : nil)
        }
    }

    /// Nothing more will arrive: held rows with nothing verified in the whole run mean no
    /// license server answered; they go back to pending and the run stops.
    mutating func settle() -> (record: [CompletedAttempt], stop: String?) {
        guard !held.isEmpty else { return ([], nil) }
        defer { held.removeAll() }
        if early.verified { return (held, nil) }
        let message = early.message(.wrongServer, count: held.count, keys: keys, maxClockSkew: maxClockSkew, url: url)
        return (held.map { Self.refund($0, message: message) }, message)
    }

    /// No license server processed it: back to pending, the attempt refunded, and the row's
    /// `maybe_delivered` as it was before this attempt.
    static func refund(_ attempt: CompletedAttempt, message: String) -> CompletedAttempt {
        var refunded = attempt
        var c = attempt.classification
        c.state = .pending
        c.outcome = .configStop
        c.maybeDelivered = attempt.row.maybeDelivered
        c.countsAttempt = false
        c.error = c.error.map { "\(message) (\($0))" } ?? message
        c.configStop = message
        refunded.classification = c
        refunded.nextAttemptAt = nil
        return refunded
    }
}
