/// The server-side token bucket: `rate` tokens per second, holding at most `burst`.
/// Not thread-safe: the server calls it under its state lock.
struct SandboxRateLimiter {
    let rate: Double
    let burst: Double
    private var tokens: Double
    private var updatedAt: Double

    init(_ limit: SandboxConfiguration.RateLimit, now: Double) {
        rate = limit.rate
        burst = Double(limit.burst)
        tokens = burst
        updatedAt = now
    }

    /// nil when the request may go ahead; otherwise whole seconds (at least 1) until a token
    /// will be there, for `Retry-After`.
    mutating func take(now: Double) -> Int? {
        tokens = min(burst, tokens + max(0, now - updatedAt) * rate)
        updatedAt = now
        if tokens >= 1 {
            tokens -= 1
            return nil
        }
        let wait = (1 - tokens) / rate
        return max(1, Int(wait.rounded(.up)))
    }
}
