/// What the run's state machine asks of the rate limiter that all senders share: when the
/// next request may leave, that requests left, and the pause a 429 imposes on everyone. Times
/// are monotonic seconds passed in, so that a simulated clock drives it as the real one does.
/// `TokenBucket` is today's; another limiter (several windows, a daily quota) plugs in here.
package protocol RunLimiter: AnyObject, Sendable {
    /// Whole requests that may leave now (0 during a pause).
    func available(now: Double) -> Int
    /// When the next request may leave (the end of a pause, or the next refill).
    func nextSendTime(now: Double) -> Double
    /// `count` requests left at `now`.
    func record(_ count: Int, now: Double)
    /// A 429 for a request sent at `sentAt`: pause every sender. Returns the pause's end.
    @discardableResult
    func pause(seconds: Double?, now: Double, sentAt: Double) -> Double
    /// A reply that was not a 429, to a request sent at `sentAt`.
    func noteNotRateLimited(sentAt: Double)
    /// The current pause's end (monotonic); in the past when there is none.
    var pauseEnd: Double { get }
    /// How long the server asked the current pause to be, in seconds.
    var askedPause: Double { get }
    /// Pauses begun so far (a wave of 429s counts once).
    var pauses: Int { get }
}

extension TokenBucket: RunLimiter {
    package func nextSendTime(now: Double) -> Double { nextAvailable(now: now) }
    package func record(_ count: Int, now: Double) { take(count, now: now) }
}
