import Foundation

/// The rate limit all senders share: `rate` requests per second with bursts of up to
/// `burst − 1` (see `capacity`), and one pause that a 429 imposes on everyone at once. Times
/// are monotonic seconds.
///
/// The bucket starts full, then refills continuously, so over any window of length T the
/// requests sent never exceed `capacity + rate × T`.
///
/// Why one token in reserve: the server's limiter counts a request when it *arrives*, and
/// arrival times jitter (loopback included), so requests sent exactly 1/R apart can arrive
/// closer together. A client that used all `burst` tokens would leave a server with the
/// same burst nothing to absorb that jitter, and it would answer 429. Sending at most
/// `burst − 1` back-to-back leaves the server's bucket one token ahead, which absorbs up to
/// 1/R of jitter at the cost of one request at start. With a burst of 1 no reserve is
/// possible: a server whose burst is 1 cannot absorb any jitter, so use a burst ≥ 2.
final class TokenBucket: @unchecked Sendable {
    let rate: Double
    /// The most tokens the bucket holds: `burst − 1` when `burst` ≥ 2, else 1.
    let capacity: Double
    private let lock = NSLock()
    private var tokens: Double
    private var refilledAt: Double
    private var pausedUntil: Double = 0
    private var consecutive429 = 0
    /// When the current wave's pause began (monotonic); -∞ before the first 429.
    private var pauseStartedAt = -Double.infinity
    private(set) var pauses = 0

    /// `rate` ≤ 0 means unlimited.
    init(rate: Double, burst: Int, now: Double = Timestamps.monotonic()) {
        self.rate = rate
        self.capacity = burst >= 2 ? Double(burst - 1) : 1
        self.tokens = self.capacity
        self.refilledAt = now
    }

    var isUnlimited: Bool { rate <= 0 }

    private func refill(_ now: Double) {
        if now > refilledAt {
            tokens = min(capacity, tokens + (now - refilledAt) * rate)
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
    /// `retry_after`); without it the pause doubles with each wave of 429s: 1, 2, 4 … 60 s.
    /// `sentAt` is when the refused request left: requests that all left before the current
    /// pause began are one wave (they were sent together, so they say nothing new about the
    /// server), and however many of them come back 429 they raise the streak once.
    /// Returns the pause's end (monotonic). How long a run may spend paused is the runner's
    /// `--max-wait`; the cap here only keeps the arithmetic sane.
    @discardableResult
    func pause(seconds: Double?, now: Double, sentAt: Double) -> Double {
        lock.lock()
        defer { lock.unlock() }
        if sentAt >= pauseStartedAt {
            consecutive429 += 1
            pauseStartedAt = now
        }
        let delay = seconds.map { max(0, min($0, 3600)) }
            ?? min(60, pow(2, Double(min(max(consecutive429, 1) - 1, 10))))
        // A pause that starts counts once; later 429s of its wave may stretch it a little.
        if now >= pausedUntil { pauses += 1 }
        pausedUntil = max(pausedUntil, now + delay)
        return pausedUntil
    }

    /// A reply that was not a 429, to a request sent since the last pause began, ends the streak
    /// that drives the exponential pause. (One sent before it says nothing about the server now.)
    func noteNotRateLimited(sentAt: Double) {
        lock.lock()
        if sentAt >= pauseStartedAt { consecutive429 = 0 }
        lock.unlock()
    }

    /// How many waves of 429s in a row (for tests and messages).
    var streak: Int {
        lock.lock()
        defer { lock.unlock() }
        return consecutive429
    }

    var pauseEnd: Double {
        lock.lock()
        defer { lock.unlock() }
        return pausedUntil
    }
}
