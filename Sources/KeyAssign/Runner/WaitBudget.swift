/// `--max-wait`: how long a run may spend, in total, waiting rather than sending: for a 429
/// pause to end, for the next probe of an unreachable server, for scheduled retries to come
/// due. Pacing at `--rate` is sending, not waiting, and does not count. A wait that would not
/// fit is not started: the run stops at once and leaves its rows for the next run, instead of
/// sleeping through an hour-long `Retry-After` and finding the next night's run locked out.
struct WaitBudget: Sendable {
    let limit: Double
    private(set) var spent: Double = 0

    init(limit: Double) {
        self.limit = max(0, limit)
    }

    var remaining: Double { max(0, limit - spent) }

    func allows(_ seconds: Double) -> Bool { seconds <= remaining }

    mutating func spend(_ seconds: Double) {
        if seconds > 0 { spent += seconds }
    }
}
