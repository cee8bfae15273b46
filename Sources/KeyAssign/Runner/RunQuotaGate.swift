/// What the run's state machine asks of the server's quotas (`--rate N/WINDOW`,
/// `X-RateLimit-*`, a long `Retry-After`), beside the rate limiter: how many requests may leave,
/// when the next may and why not sooner, and what the server said. `RunQuota` is the run's;
/// recording sends in the database is the runner's part (`RunQuota.take`), not the machine's.
package protocol RunQuotaGate: AnyObject, Sendable {
    func available(now: Double) -> Int
    /// When the next request may leave, and why not sooner (nil: nothing holds it).
    func nextAvailable(now: Double) -> (at: Double, why: String?)
    /// Unix time of a monotonic one.
    func wallTime(_ monotonic: Double) -> Double
    /// A 429 that said how long to wait.
    func refused(retryAfter seconds: Double, now: Double)
    /// The `X-RateLimit-*` headers of the reply to a request that left at `sentAt`.
    func observe(_ headers: RateLimitHeaders, sentAt: Double)
}

extension RunQuota: RunQuotaGate {}
