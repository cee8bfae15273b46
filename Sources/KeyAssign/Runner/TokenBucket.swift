import Foundation

/// The rate limit all senders share: `rate` requests per second with bursts of up to `burst`,
/// and one pause that a 429 imposes on everyone at once. Times are monotonic seconds.
///
/// The bucket starts full (a burst of `burst` at start), then refills continuously, so over
/// any window of length T the requests sent never exceed `burst + rate × T`.
final class TokenBucket: @unchecked Sendable {
    let rate: Double
    let burst: Double
    private let lock = NSLock()
    private var tokens: Double
    private var refilledAt: Double
    private var pausedUntil: Double = 0
    private var consecutive429 = 0
    private(set) var pauses = 0

    /// `rate` ≤ 0 means unlimited.
    init(rate: Double, burst: Int, now: Double = Timestamps.monotonic()) {
        self.rate = rate
        self.burst = Double(max(1, burst))
        self.tokens = self.burst
        self.refilledAt = now
    }

    var isUnlimited: Bool { rate <= 0 }

    private func refill(_ now: Double) {
        if now > refilledAt {
            tokens = min(burst, tokens + (now - refilledAt) * rate)
            refilledAt = now
        }
    }

    /// Whole tokens available now (0 during a pause).
    func available(now: Double) -> Int {
        lock.lock()
        defer { lock.unlock() }
        if now < pausedUntil { return 0 }
        if isUnlimited { return Int.max }
        refill(now)
        // The epsilon keeps 0.1 s × 50/s from counting as 4.999… tokens.
        return Int((tokens + 1e-9).rounded(.down))
    }

    func take(_ count: Int, now: Double) {
        if count <= 0 { return }
        lock.lock()
        defer { lock.unlock() }
        if isUnlimited { return }
        refill(now)
        tokens -= Double(count)
    }

    /// When the next token can be taken (the end of a pause, or the next refill).
    func nextAvailable(now: Double) -> Double {
        lock.lock()
        defer { lock.unlock() }
        var at = max(now, pausedUntil)
        if !isUnlimited {
            refill(now)
            if tokens + 1e-9 < 1 { at = max(at, now + (1 - tokens) / rate) }
        }
        return at
    }

    /// Pauses every sender. `seconds` comes from the server (Retry-After, or the body's
    /// `retry_after`); without it the pause doubles with each 429 in a row: 1, 2, 4 … 60 s.
    /// Returns the pause's end (monotonic).
    @discardableResult
    func pause(seconds: Double?, now: Double) -> Double {
        lock.lock()
        defer { lock.unlock() }
        consecutive429 += 1
        let delay = seconds.map { max(0, min($0, 3600)) }
            ?? min(60, pow(2, Double(min(consecutive429 - 1, 10))))
        let end = now + delay
        if end > pausedUntil {
            pausedUntil = end
            pauses += 1
        }
        return pausedUntil
    }

    /// A reply that was not a 429 ends the streak that drives the exponential pause.
    func noteNotRateLimited() {
        lock.lock()
        consecutive429 = 0
        lock.unlock()
    }

    var pauseEnd: Double {
        lock.lock()
        defer { lock.unlock() }
        return pausedUntil
    }
}
