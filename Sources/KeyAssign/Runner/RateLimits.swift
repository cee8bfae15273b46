/// Every quota a run must keep, decided without a clock of its own: the caller passes `now`
/// (monotonic seconds in a run, anything in a test), so the rules are tested over random
/// schedules and no test waits for a window to pass.
///
/// What it keeps:
/// - the `--rate N/WINDOW` limits, as a sliding-window log: a send is allowed at `t` only if
///   fewer than N were sent in `(t − W', t]`, where W' is W plus a small margin (`margin(for:)`).
///   Then no window of length W, wherever it starts, ever holds more than N sends, and so no
///   fixed window a server counts in does either, whenever it opened;
/// - what the server last said in `X-RateLimit-Remaining` and `X-RateLimit-Reset`: no more
///   than Remaining go out before Reset (less what was sent since the reply that said it);
/// - a time before which nothing is sent (`closedUntil`): a 429's `Retry-After`, the server's
///   own word that its quota is spent.
///
/// Its interface is `TokenBucket`'s: `available`, `take`, `nextAvailable`.
struct RateLimits: Sendable {
    let limits: [RateLimit]
    /// The log: `times[i]` is when a batch left, `cumulative[i]` how many had left by then,
    /// that batch included. Entries before `head` are forgotten; `base` is what they counted.
    private var times: [Double] = []
    private var cumulative: [Int] = []
    private var head = 0
    private var base = 0
    private(set) var total = 0
    /// Nothing is sent before this (monotonic), if set.
    private(set) var closedUntil: Double?
    private(set) var server: ServerReport?

    /// What the server said of its own quota in one reply.
    struct ServerReport: Sendable, Equatable {
        var limit: Int?
        var remaining: Int
        /// When its window ends (monotonic); nil when the server did not say.
        var resetAt: Double?
        /// When the request it answered left: sends after it are not in `remaining`.
        var sentAt: Double
        /// Sends of that request's own batch besides itself, counted as spent after it: the
        /// log cannot tell which of them the server had counted already.
        var batchMates: Int
    }

    /// What keeps the next send waiting, for the message that names it.
    enum Blocker: Sendable, Equatable {
        case closed(until: Double)
        case window(RateLimit, sent: Int, until: Double)
        /// `remaining`: what the server's Remaining leaves after what was sent since it said it.
        case server(limit: Int?, remaining: Int, until: Double)
    }

    init(limits: [RateLimit]) {
        self.limits = limits
    }

    /// Requests arrive at the server a little later than they leave, and not all equally late:
    /// sends exactly W apart could arrive less than W apart and land in one of its windows.
    /// Waiting a little longer than W keeps them apart: a twentieth of the window, at most 1 s.
    static func margin(for window: Double) -> Double {
        min(1, window / 20)
    }

    // MARK: the log

    /// Index of the last entry at or before `time`, or nil.
    private func lastIndex(atOrBefore time: Double) -> Int? {
        var low = head
        var high = times.count
        while low < high {
            let mid = (low + high) / 2
            if times[mid] <= time { low = mid + 1 } else { high = mid }
        }
        return low > head ? low - 1 : nil
    }

    /// Sends strictly after `time`.
    func sent(after time: Double) -> Int {
        guard let index = lastIndex(atOrBefore: time) else { return total - base }
        return total - cumulative[index]
    }

    /// Records `count` sends at `now`. Times given out of order are kept in order (as sent
    /// at the latest time recorded): later is always the safe side.
    mutating func take(_ count: Int, now: Double) {
        guard count > 0 else { return }
        let time = max(now, times.last ?? now)
        total += count
        if let last = times.indices.last, last >= head, times[last] == time {
            cumulative[last] = total
        } else {
            times.append(time)
            cumulative.append(total)
        }
        forget(before: now)
    }

    /// Drops entries no limit and no server report needs any more.
    private mutating func forget(before now: Double) {
        let longest = limits.map { $0.window + Self.margin(for: $0.window) }.max() ?? 0
        var horizon = now - longest
        // A report counts what left after it until its Reset; after that it limits nothing.
        if let server, let reset = server.resetAt, now < reset { horizon = min(horizon, server.sentAt - 1) }
        guard let index = lastIndex(atOrBefore: horizon) else { return }
        base = cumulative[index]
        head = index + 1
        if head > 1024 && head * 2 > times.count {
            times.removeFirst(head)
            cumulative.removeFirst(head)
            head = 0
        }
    }

    // MARK: what the server says

    /// A 429 whose `Retry-After` says when the server takes requests again.
    mutating func close(until time: Double) {
        closedUntil = max(closedUntil ?? time, time)
    }

    /// `X-RateLimit-*` of the reply to a request that left at `sentAt`. A report about a later
    /// window replaces the one held; within one window the lowest estimate wins, since replies
    /// come back out of order.
    mutating func observe(limit: Int?, remaining: Int, resetAt: Double?, sentAt: Double) {
        var mates = 0
        if let index = lastIndex(atOrBefore: sentAt) {
            let before = index > head ? cumulative[index - 1] : base
            mates = max(0, cumulative[index] - before - 1)
        }
        let report = ServerReport(
            limit: limit, remaining: remaining, resetAt: resetAt, sentAt: sentAt, batchMates: mates)
        guard let held = server else {
            server = report
            return
        }
        let laterWindow = (report.resetAt ?? -.infinity) > (held.resetAt ?? -.infinity) + 0.5
        let sameWindow = abs((report.resetAt ?? 0) - (held.resetAt ?? 0)) <= 0.5
        if laterWindow || (sameWindow && left(report) <= left(held)) || held.resetAt == nil {
            server = report
        }
    }

    /// A report as an earlier run left it (its Remaining already less what that run sent).
    mutating func restore(_ report: ServerReport) {
        server = report
    }

    /// What a report leaves to send now: its Remaining, less what left after it.
    func left(_ report: ServerReport) -> Int {
        report.remaining - sent(after: report.sentAt) - report.batchMates
    }

    // MARK: TokenBucket's interface

    /// How many may leave at `now`.
    func available(now: Double) -> Int {
        if let closedUntil, now < closedUntil { return 0 }
        var allowed = Int.max
        for limit in limits {
            allowed = min(allowed, limit.count - sent(after: now - limit.window - Self.margin(for: limit.window)))
        }
        // Without a Reset there is nothing to wait for: the server's 429 will say how long.
        if let server, let reset = server.resetAt, now < reset {
            allowed = min(allowed, left(server))
        }
        return max(0, allowed)
    }

    /// When the next one may leave (`now` if it may now), and what holds it back until then.
    func nextAvailable(now: Double) -> (at: Double, blocker: Blocker?) {
        var at = now
        var blocker: Blocker?
        if let closedUntil, now < closedUntil {
            at = closedUntil
            blocker = .closed(until: closedUntil)
        }
        for limit in limits {
            let span = limit.window + Self.margin(for: limit.window)
            let sent = sent(after: now - span)
            guard sent >= limit.count else { continue }
            // The window must lose sends until one more fits: the first entry by which that
            // many had left has to fall out of it.
            let needed = total - (limit.count - 1)
            var low = head
            var high = times.count
            while low < high {
                let mid = (low + high) / 2
                if cumulative[mid] < needed { low = mid + 1 } else { high = mid }
            }
            let index = low
            guard index < times.count else { continue }
            // A microsecond past, so that the entry is strictly outside (t − W', t].
            let free = times[index] + span + 1e-6
            if free > at {
                at = free
                blocker = .window(limit, sent: sent, until: free)
            }
        }
        if let server, let reset = server.resetAt, now < reset, left(server) <= 0, reset > at {
            at = reset
            blocker = .server(limit: server.limit, remaining: max(0, left(server)), until: reset)
        }
        return (at, blocker)
    }
}
