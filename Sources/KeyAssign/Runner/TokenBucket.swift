import Foundation
import Synchronization

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
final class TokenBucket: Sendable {
    let rate: Double
    /// The most tokens the bucket holds: `burst − 1` when `burst` ≥ 2, else 1.
    let capacity: Double
    private let state: Mutex<State>

    private struct State {
        var tokens: Double
        var refilledAt: Double
        var pausedUntil: Double = 0
        var consecutive429 = 0
        /// When the current wave's pause began (monotonic); -∞ before the first 429.
        var pauseStartedAt = -Double.infinity
        var pauses = 0
        /// The length of the longest pause asked for in the current pause, as the server said
        /// it (or the backoff chose it): what a person is told when the run stops for it.
        var askedPause: Double = 0

        mutating func refill(_ now: Double, rate: Double, capacity: Double) {
            if now > refilledAt {
                tokens = min(capacity, tokens + (now - refilledAt) * rate)
                refilledAt = now
            }
        }
    }

    /// `rate` ≤ 0 means unlimited.
    init(rate: Double, burst: Int, now: Double = Timestamps.monotonic()) {
        self.rate = rate
        let capacity: Double = burst >= 2 ? Double(burst - 1) : 1
        self.capacity = capacity
        self.state = Mutex(State(tokens: capacity, refilledAt: now))
    }

    var isUnlimited: Bool { rate <= 0 }

    /// Whole tokens available now (0 during a pause).
    func available(now: Double) -> Int {
        let (rate, capacity, unlimited) = (rate, capacity, isUnlimited)
        return state.withLock { state in
            if now < state.pausedUntil { return 0 }
            if unlimited { return Int.max }
            state.refill(now, rate: rate, capacity: capacity)
            // The epsilon keeps 0.1 s × 50/s from counting as 4.999… tokens.
            return Int((state.tokens + 1e-9).rounded(.down))
        }
    }

    func take(_ count: Int, now: Double) {
        if count <= 0 || isUnlimited { return }
        let (rate, capacity) = (rate, capacity)
        state.withLock { state in
            state.refill(now, rate: rate, capacity: capacity)
            state.tokens -= Double(count)
        }
    }

    /// When the next token can be taken (the end of a pause, or the next refill).
    func nextAvailable(now: Double) -> Double {
        let (rate, capacity, unlimited) = (rate, capacity, isUnlimited)
        return state.withLock { state in
            var at = max(now, state.pausedUntil)
            if !unlimited {
                state.refill(now, rate: rate, capacity: capacity)
                if state.tokens + 1e-9 < 1 { at = max(at, now + (1 - state.tokens) / rate) }
            }
            return at
        }
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
        state.withLock { state in
            if sentAt >= state.pauseStartedAt {
                state.consecutive429 += 1
                state.pauseStartedAt = now
            }
            let delay =
                seconds.map { max(0, min($0, 3600)) }
                ?? min(60, pow(2, Double(min(max(state.consecutive429, 1) - 1, 10))))
            // A pause that starts counts once; later 429s of its wave may stretch it a little.
            if now >= state.pausedUntil {
                state.pauses += 1
                state.askedPause = 0
            }
            state.askedPause = max(state.askedPause, delay)
            state.pausedUntil = max(state.pausedUntil, now + delay)
            return state.pausedUntil
        }
    }

    /// A reply that was not a 429, to a request sent since the last pause began, ends the streak
    /// that drives the exponential pause. (One sent before it says nothing about the server now.)
    func noteNotRateLimited(sentAt: Double) {
        state.withLock { state in
            if sentAt >= state.pauseStartedAt { state.consecutive429 = 0 }
        }
    }

    /// How many waves of 429s in a row (for tests and messages).
    var streak: Int {
        state.withLock { $0.consecutive429 }
    }

    var pauseEnd: Double {
        state.withLock { $0.pausedUntil }
    }

    /// How long the server asked the current pause to be (the longest of its wave), in seconds.
    var askedPause: Double {
        state.withLock { $0.askedPause }
    }

    /// Pauses begun so far (a wave of 429s counts once).
    var pauses: Int {
        state.withLock { $0.pauses }
    }
}
