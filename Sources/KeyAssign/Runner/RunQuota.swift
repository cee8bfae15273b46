import Logging
import Synchronization

/// The run's quotas: `RateLimits` (the pure rules) behind a mutex, with what the database
/// remembers of earlier runs (`QuotaStore`) and the messages a person reads. The dispatcher
/// asks it as it asks `TokenBucket` (`available`, `nextAvailable`, `take`); the reply queue
/// tells it what the server said (`observe`, `refused`).
///
/// `RateLimits` counts in monotonic seconds, the database in Unix seconds: `offset` turns one
/// into the other, taken once per run.
final class RunQuota: Sendable {
    let limits: [RateLimit]
    private let logger: Logger
    private let quiet: Bool
    /// Wall clock minus monotonic clock at the start of the run.
    private let offset: Double
    private let state: Mutex<State>

    private struct State {
        var rules: RateLimits
        var closedReason: String?
        var perRun: Int?
        var loggedServerReport = false
    }

    init(limits: [RateLimit], logger: Logger, quiet: Bool) {
        self.limits = limits
        self.logger = logger
        self.quiet = quiet
        self.offset = Timestamps.now() - Timestamps.monotonic()
        self.state = Mutex(State(rules: RateLimits(limits: limits)))
    }

    /// How long sends are kept in the database: the longest window, and a day at least, so
    /// that a later run with a daily limit still finds today's.
    private var keptFor: Double {
        max(86_400, limits.map { $0.window + RateLimits.margin(for: $0.window) }.max() ?? 0) + 1
    }

    private func wall(_ monotonic: Double) -> Double { monotonic + offset }
    private func monotonic(_ wall: Double) -> Double { wall - offset }

    // MARK: the start and the end of a run

    /// Reads what earlier runs sent and what the server last said, and logs it.
    func start(_ db: Database) throws {
        let store = QuotaStore(database: db)
        let now = Timestamps.monotonic()
        let sends = limits.isEmpty ? [] : try store.sends(since: wall(now) - keptFor)
        let saved = try store.serverState()
        let lines = state.withLock { state -> [String] in
            for send in sends { state.rules.take(send.requests, now: monotonic(send.at)) }
            if let until = saved.closedUntil, until > wall(now) {
                state.rules.close(until: monotonic(until))
                state.closedReason = saved.closedReason
            }
            if let remaining = saved.remaining, let reset = saved.reset, reset > wall(now) {
                state.rules.restore(
                    .init(
                        limit: saved.limit, remaining: remaining, resetAt: monotonic(reset),
                        sentAt: now - 1e-6, batchMates: 0))
            }
            state.perRun = saved.perRun
            var lines: [String] = []
            if !limits.isEmpty {
                let spent = limits.map { limit in
                    "\(state.rules.sent(after: now - limit.window)) of \(limit.count) in the last \(Self.span(limit.window))"
                }
                lines.append(
                    "quota: --rate \(limits.map(\.description).joined(separator: ", ")); already sent: \(spent.joined(separator: ", "))"
                )
            }
            if let remaining = saved.remaining, let reset = saved.reset, reset > wall(now) {
                lines.append(
                    "the server's quota as it last said (X-RateLimit, \(saved.reportedAt ?? "earlier")): "
                        + Self.describe(limit: saved.limit, remaining: remaining, reset: reset))
            }
            if let until = saved.closedUntil, until > wall(now) {
                lines.append(
                    "the server asked not to be sent anything before \(Timestamps.iso8601(until)) (\(saved.closedReason ?? "HTTP 429"))"
                )
            }
            return lines
        }
        if !quiet { for line in lines { logger.info("\(line)") } }
    }

    /// Writes what the next run needs, and ends a run stopped by the quota with its one line.
    /// `summary` is the run's; its `quotaReopensAt` says whether the quota stopped it.
    func finish(_ db: Database, summary: RunSummary) throws {
        let store = QuotaStore(database: db)
        let now = Timestamps.monotonic()
        let sentThisRun = max(0, summary.requests - summary.rateLimited)
        let stopped = summary.quotaReopensAt != nil
        let (saved, perNight) = state.withLock { state -> (QuotaStore.ServerState, Int?) in
            if stopped && sentThisRun > 0 { state.perRun = sentThisRun }
            var saved = QuotaStore.ServerState(perRun: state.perRun)
            if let until = state.rules.closedUntil, until > now {
                saved.closedUntil = wall(until)
                saved.closedReason = state.closedReason
            }
            if let server = state.rules.server, let reset = server.resetAt {
                saved.limit = server.limit
                saved.remaining = max(0, state.rules.left(server))
                saved.reset = wall(reset)
                saved.reportedAt = Timestamps.iso8601(wall(server.sentAt))
            }
            let tightest = (limits.map(\.count) + [state.rules.server?.limit].compactMap { $0 }).min()
            return (saved, state.perRun ?? tightest)
        }
        try db.transaction {
            try store.save(saved)
            if !limits.isEmpty { try store.forgetSends(before: wall(now) - keptFor) }
        }
        guard stopped else { return }
        let left = summary.pendingLeft + summary.retryLeft
        var line = "quota spent: \(left) rows left"
        if let perNight, perNight > 0 {
            line += ", about \((left + perNight - 1) / perNight) more nights at this quota"
        } else {
            line += ", more nights at this quota than can be told yet (nothing has been sent at it)"
        }
        if let reopens = summary.quotaReopensAt { line += "; it reopens at \(Timestamps.iso8601(reopens))" }
        logger.warning("\(line)")
    }

    // MARK: TokenBucket's interface

    func available(now: Double) -> Int {
        state.withLock { $0.rules.available(now: now) }
    }

    /// When the next request may leave, and why not sooner (nil: nothing holds it).
    func nextAvailable(now: Double) -> (at: Double, why: String?) {
        let (at, blocker, reason) = state.withLock { state in
            let next = state.rules.nextAvailable(now: now)
            return (next.at, next.blocker, state.closedReason)
        }
        guard let blocker else { return (at, nil) }
        let why: String
        switch blocker {
        case .closed(let until):
            why =
                "the server's quota is spent: \(reason ?? "it answered HTTP 429") and takes requests again at \(Timestamps.iso8601(wall(until)))"
        case .window(let limit, let sent, let until):
            why =
                "the --rate \(limit) quota is spent: \(sent) sent in the last \(Self.span(limit.window)), the next fits at \(Timestamps.iso8601(wall(until)))"
        case .server(let limit, let remaining, let until):
            why =
                "the server's quota is spent: \(remaining)\(limit.map { " of \($0)" } ?? "") left (its X-RateLimit-Remaining, less what was sent since it said it) until X-RateLimit-Reset \(Timestamps.iso8601(wall(until)))"
        }
        return (at, why)
    }

    /// Unix time of a monotonic one (for the summary and the metrics file).
    func wallTime(_ monotonic: Double) -> Double { wall(monotonic) }

    /// Records `count` requests leaving at `now`; with `--rate N/WINDOW` limits, in the
    /// database too, so that a run that dies still leaves them counted.
    func take(_ count: Int, now: Double, shared: SharedQueue) throws {
        if count <= 0 { return }
        state.withLock { $0.rules.take(count, now: now) }
        if limits.isEmpty { return }
        let at = wall(now)
        try shared.with { try QuotaStore(database: $0.database).recordSend(at: at, requests: count) }
    }

    // MARK: what the server said

    /// A 429 that said how long to wait: nothing leaves before then, in this run or the next.
    func refused(retryAfter seconds: Double, now: Double) {
        state.withLock { state in
            state.rules.close(until: now + seconds)
            state.closedReason =
                "it answered HTTP 429 at \(Timestamps.iso8601(wall(now))) with Retry-After \(Int(seconds.rounded(.up))) s"
        }
    }

    /// The `X-RateLimit-*` headers of the reply to a request that left at `sentAt`. The first
    /// report of a run is logged.
    func observe(_ headers: RateLimitHeaders, sentAt: Double) {
        guard let remaining = headers.remaining else { return }
        let first = state.withLock { state -> Bool in
            state.rules.observe(
                limit: headers.limit, remaining: remaining, resetAt: headers.reset.map(monotonic),
                sentAt: sentAt)
            defer { state.loggedServerReport = true }
            return !state.loggedServerReport
        }
        if first && !quiet {
            logger.info(
                "the server's quota (X-RateLimit): \(Self.describe(limit: headers.limit, remaining: remaining, reset: headers.reset)); keyassign sends no more than that before it resets"
            )
        }
    }

    // MARK: words

    private static func describe(limit: Int?, remaining: Int, reset: Double?) -> String {
        var text = "\(remaining)"
        if let limit { text += " of \(limit)" }
        text += " remaining"
        if let reset { text += " until \(Timestamps.iso8601(reset))" }
        return text
    }

    /// `60 s`, `1 min`, `1 hour`, `1 day`.
    private static func span(_ seconds: Double) -> String {
        for (length, unit) in [(86_400.0, "day"), (3600, "hour"), (60, "min")] where seconds == length {
            return "1 \(unit)"
        }
        let text = seconds.rounded() == seconds ? String(Int64(seconds)) : String(seconds)
        return "\(text) s"
    }
}
