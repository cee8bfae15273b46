#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Every decision of a run's sending phase, as a pure state machine in the style of
/// async-http-client's `HTTPConnectionPool.StateMachine`: events go in (a tick at time t, rows
/// claimed, a reply classified, a flush done, the next retry's due time, a signal), actions come
/// out (claim n rows, record these results, flush, find the next due time, wait until t, stop).
/// It does no I/O, reads no clock and holds no lock: `Runner` carries out its actions on
/// libcurl, SQLite and signals, and calls it under one mutex; the simulator
/// (`KeyAssignSandbox/Simulation`) drives the same type with a simulated clock, network and
/// server. Times are monotonic seconds unless named `wall`.
///
/// The rules it holds:
/// - **Slots and pacing.** At most `concurrency` requests in flight; a claim waits for a
///   handful of free slots while requests are in flight (one claim transaction per handful
///   of rows); requests leave no faster than the limiter allows, and never during a 429 pause.
/// - **Waiting is bounded.** `--max-wait` covers every wait but pacing (`WaitBudget`): a 429
///   pause, the next probe of an unreachable server, a scheduled retry. A wait that would not
///   fit is not started: the run stops.
/// - **Handing over.** The attempts an event returns (`Effects.record`, `Action.record`) must
///   be handed to the recorder before the machine hears anything else: the machine counts them
///   as handed over, and decides that nothing more is due only after a `flush` that followed
///   them. A reply's slot is freed in the same step that hands over its attempt, so "nothing
///   in flight" always means "every result handed over".
/// - **The end.** A run ends when nothing is in flight, nothing can be claimed, every
///   result is flushed and no retry comes due within what is left of `--max-wait`; or when a
///   stop (signal, auth, configuration, unreachable server, a wait too long, a spent quota) is met.
package struct RunStateMachine: Sendable {
    /// What the caller does next.
    package enum Action: Sendable {
        /// Claim up to this many due rows (`WorkQueue.claim`) and send each; then `claimed`.
        case claim(Int)
        /// Hand these attempts to the recorder (held unsigned refusals, now decided).
        case record([CompletedAttempt])
        /// Commit every attempt handed over so far; then `flushed`.
        case flush
        /// Ask the queue when the next retry is due (`WorkQueue.nextRetryDue`); then `nextDue`.
        case findNextDue
        /// Sleep until this monotonic time, or until an event wakes the caller (nil: only an
        /// event). Then `next` again.
        case wait(until: Double?)
        /// Send nothing more: drain what is in flight, then the run ends with `stops`' status.
        case stop
    }

    /// What an event asks of the caller beyond the next action.
    package struct Effects: Sendable {
        /// Attempts to hand to the recorder now (see "Handing over").
        package var record: [CompletedAttempt] = []
        /// Why the run stops, to log as errors.
        package var stopMessages: [String] = []
        /// The dispatcher sleeps on something this event changed: wake it.
        package var wakeDispatcher = false
    }

    /// What a sleeping dispatcher waits for.
    private enum WakeOn: Sendable {
        /// Any reply (a freed slot may make a claim possible, or a result may make rows due).
        case anyReply
        /// At least this many free slots, or nothing in flight.
        case freeSlots(Int)
        /// A time; replies wake it only when they change the run (a pause, a stop, nothing in flight).
        case time
    }

    /// Where the search for work stands once a claim came back empty.
    private enum Step: Sendable {
        case sending
        /// A claim came back empty while requests were in flight: wait for a reply, or for the
        /// next retry to come due (monotonic), whichever is first.
        case awaitingReply(until: Double?)
        /// A claim came back empty with nothing in flight: decide held refusals, then flush.
        case settling
        case awaitingFlush
        /// Waiting for `nextDue`; `afterFlush`: nothing is in flight and everything is flushed.
        case awaitingDue(afterFlush: Bool)
        /// The next retry is due at this monotonic time, within --max-wait.
        case sleepingUntilDue(Double)
        /// Nothing more to send in this run.
        case finished
    }

    let concurrency: Int
    /// Claims wait for this many free slots while requests are in flight.
    let minimumClaim: Int
    /// The most rows one claim takes.
    let claimLimit: Int
    let maxWait: Double
    let quiet: Bool
    package let limiter: any RunLimiter
    /// The server's quotas, when the run has any (`RunQuota`).
    package let quota: (any RunQuotaGate)?

    package private(set) var inFlight = 0
    package private(set) var stops = RunStops()
    package private(set) var tally = RunTally()
    private(set) var breaker: CircuitBreaker
    private var refusals = RefusalGate<CompletedAttempt>()
    /// A wrong --public-key, clock or --server stops the run after a handful of replies.
    private var early: EarlyStopGate
    private(set) var budget: WaitBudget
    private var step = Step.sending
    /// Attempts handed over since the last claim began: a flush of them may have made rows due.
    private var handedOverSinceClaim = 0
    /// Attempts handed over since the last `flushed`.
    private var unflushed = 0
    /// The wait the caller is in, if any: since when, until when it counts against --max-wait,
    /// and what may wake it.
    private var sleeping: (since: Double, countedUntil: Double, wakeOn: WakeOn)?
    /// Lines for the log, with their level (the caller drains them).
    package private(set) var notices: [Notice] = []

    package struct Notice: Sendable, Equatable {
        package enum Level: Sendable { case info, warning, error }
        package var level: Level
        package var text: String
    }

    /// `signingKeys`: the configured keys, named in the early stop's message.
    package init(
        options: RunOptions, limiter: any RunLimiter, quota: (any RunQuotaGate)? = nil,
        signingKeys: [SigningKey] = []
    ) {
        concurrency = options.concurrency
        minimumClaim = max(1, min(16, options.concurrency / 4))
        claimLimit = 64
        maxWait = options.maxWait
        quiet = options.progress == .quiet
        self.limiter = limiter
        self.quota = quota
        breaker = CircuitBreaker(window: options.maxWait)
        early = EarlyStopGate(keys: signingKeys, maxClockSkew: options.maxClockSkew, url: options.endpoint.display)
        budget = WaitBudget(limit: options.maxWait)
    }

    /// The limiter `keyassign run` uses for `options`: the shared token bucket.
    package static func standardLimiter(_ options: RunOptions, now: Double) -> any RunLimiter {
        TokenBucket(rate: options.rate, burst: options.burst, now: now)
    }

    // MARK: the next action

    /// A tick at `now`: what to do next.
    package mutating func next(now: Double) -> Action {
        if let sleep = sleeping {
            budget.spend(min(now, sleep.countedUntil) - sleep.since)
            sleeping = nil
        }
        if stops.any { return .stop }
        switch step {
        case .sending:
            break
        case .awaitingReply(let until):
            if inFlight > 0 && until.map({ now < $0 }) ?? true {
                // Requests in flight do not count against --max-wait.
                return sleep(now: now, until: until, counted: now, wakeOn: .anyReply)
            }
            step = .sending
        case .settling:
            let (records, message) = settleHeld()
            if let message {
                notices.append(
                    Notice(level: .error, text: "stopping the run: \(message); those rows go back to pending"))
            }
            if !records.isEmpty {
                step = .sending
                return .record(records)
            }
            step = .awaitingFlush
            return .flush
        case .awaitingFlush:
            return .flush
        case .awaitingDue:
            return .findNextDue
        case .sleepingUntilDue(let at):
            if now < at { return sleep(now: now, until: at, counted: at, wakeOn: .time) }
            step = .sending
        case .finished:
            return .stop
        }
        let free = concurrency - inFlight
        if free <= 0 { return sleep(now: now, until: nil, counted: now, wakeOn: .freeSlots(1)) }
        // An unreachable server gets one probe at a time, and an end.
        var breakerLimit = Int.max
        switch breaker.permission(now: now, inFlight: inFlight) {
        case .send(let limit):
            breakerLimit = limit
        case .awaitProbe:
            return sleep(now: now, until: nil, counted: now, wakeOn: .anyReply)
        case .probeAt(let at):
            if !budget.allows(at - now) {
                giveUpUnreachable(now: now, why: "the next try would pass --max-wait")
                return .stop
            }
            return sleep(now: now, until: at, counted: at, wakeOn: .time)
        case .giveUp:
            giveUpUnreachable(now: now, why: nil)
            return .stop
        }
        let tokens = min(limiter.available(now: now), quota?.available(now: now) ?? Int.max)
        if tokens <= 0 {
            var quotaAt = now
            if let quota {
                // A quota that reopens only after --max-wait ends the run: a schedule, not a failure.
                let (at, why) = quota.nextAvailable(now: now)
                if let why, !budget.allows(at - now) {
                    stopForQuota(why, reopensAt: quota.wallTime(at))
                    return .stop
                }
                quotaAt = at
            }
            // At least a microsecond: a refill that lands a hair short of a whole token (floating
            // point) must not turn into a wait that ends where it began.
            let at = max(limiter.nextSendTime(now: now), quotaAt, now + 1e-6)
            let pauseEnd = limiter.pauseEnd
            if pauseEnd > now {
                // A 429 pause is waiting, and --max-wait bounds it: a server that asks for an
                // hour must not hold the run (and the database lock) for an hour.
                let pause = pauseEnd - now
                if !budget.allows(pause) {
                    // Named as the server asked it: what is left of it by now depends on how
                    // soon the dispatcher looked, and the person reading wants the server's figure.
                    let asked = max(pause, limiter.askedPause)
                    stopForMaxWait(
                        "the server asked to pause \(Int(asked.rounded(.up))) s (HTTP 429), more than the \(Int(budget.remaining.rounded(.down))) s left of --max-wait \(Int(maxWait)) s"
                    )
                    return .stop
                }
            }
            // Pacing is sending, not waiting: only the pause counts against --max-wait.
            return sleep(now: now, until: at, counted: min(at, max(now, pauseEnd)), wakeOn: .time)
        }
        // When slots, not tokens, are what is short, wait for a few to free up: one claim
        // transaction per handful of rows instead of one per row.
        if free < minimumClaim && tokens > free && inFlight > 0 {
            return sleep(now: now, until: nil, counted: now, wakeOn: .freeSlots(minimumClaim))
        }
        // Results handed over but not known to be committed may make rows due after this claim.
        handedOverSinceClaim = unflushed
        return .claim(min(free, tokens, claimLimit, breakerLimit))
    }

    private mutating func sleep(now: Double, until: Double?, counted: Double, wakeOn: WakeOn) -> Action {
        sleeping = (now, max(now, counted), wakeOn)
        return .wait(until: until)
    }

    // MARK: events

    /// The rows of a `claim` were marked in flight; their requests leave now.
    package mutating func claimed(_ count: Int, now: Double) {
        guard count > 0 else {
            step = inFlight > 0 ? .awaitingDue(afterFlush: false) : .settling
            return
        }
        step = .sending
        limiter.record(count, now: now)
        inFlight += count
        tally.requests += count
    }

    /// A `flush` committed everything handed over.
    package mutating func flushed() {
        let madeDue = handedOverSinceClaim > 0
        unflushed = 0
        handedOverSinceClaim = 0
        guard case .awaitingFlush = step else { return }
        // A result recorded since the claim may have made a row due (a request that never
        // left goes back to pending): claim again before concluding anything.
        step = madeDue ? .sending : .awaitingDue(afterFlush: true)
    }

    /// The next retry's due time (`wall`, Unix seconds; nil: none is scheduled).
    package mutating func nextDue(_ due: Double?, wallNow: Double, now: Double) {
        guard case .awaitingDue(let afterFlush) = step else { return }
        if !afterFlush || inFlight > 0 || handedOverSinceClaim > 0 {
            // Requests are still out: sleep until a reply, or until the retry is due.
            let at = due.map { now + max(0, $0 - wallNow) }
            step = at.map { $0 <= now } ?? false ? .sending : .awaitingReply(until: at)
            return
        }
        guard let due else {
            step = .finished
            return
        }
        let wait = due - wallNow
        if wait <= 0 {
            step = .sending
        } else if !budget.allows(wait) {
            if !quiet {
                notices.append(
                    Notice(
                        level: .info,
                        text:
                            "the next retry is due in \(Int(wait.rounded(.up))) s, beyond --max-wait; leaving it for the next run"
                    ))
            }
            step = .finished
        } else {
            step = .sleepingUntilDue(now + wait)
        }
    }

    /// A request's result, verified and classified (`RowReply.judge`). Its slot is free.
    package mutating func replied(_ reply: RowReply) -> Effects {
        var effects = Effects()
        let attempt = reply.attempt
        let classification = attempt.classification
        inFlight -= 1
        if reply.untrusted { tally.untrusted += 1 }
        if let error = reply.notSentError {
            breaker.notSent(at: reply.receivedAt, error: error)
        } else if reply.reachedServer {
            breaker.reached()
        }
        if let headers = reply.rateLimit { quota?.observe(headers, sentAt: reply.sentAt) }
        if classification.rateLimited {
            limiter.pause(seconds: reply.retryAfter, now: reply.receivedAt, sentAt: reply.sentAt)
            if let seconds = reply.retryAfter { quota?.refused(retryAfter: seconds, now: reply.receivedAt) }
        } else if attempt.httpStatus != nil {
            limiter.noteNotRateLimited(sentAt: reply.sentAt)
        }
        var record: [CompletedAttempt] = []
        if classification.unsignedRefusal {
            if let message = stops.auth {
                record.append(Self.asAuthStop(attempt, message: message))
            } else if case .stop(let refused) = refusals.refused(attempt) {
                let message =
                    "every request is refused before it reaches the license server: \(refused.count) rows in a row got an unsigned HTTP \(attempt.httpStatus ?? 0) and no signed reply came back (a proxy, gateway, firewall or IP filter in front of the server refuses this client, or the API key is refused before the server sees it)"
                stops.auth = message
                effects.stopMessages.append(message)
                record += refused.map { Self.asAuthStop($0, message: message) }
            }
        } else {
            if reply.trusted { record += refusals.verifiedReply() }
            let gated = early.admit(attempt, reply.observation)
            record += gated.record
            if let message = gated.stop, stops.config == nil {
                stops.config = message
                effects.stopMessages.append(message)
            }
        }
        if let message = classification.configStop, stops.config == nil {
            stops.config = message
            effects.stopMessages.append(message)
        }
        if let message = classification.authStop, stops.auth == nil {
            stops.auth = message
            effects.stopMessages.append(message)
        }
        handOver(record, into: &effects)
        if case .awaitingReply = step { step = .sending }
        effects.wakeDispatcher = shouldWake(
            changedRun: classification.rateLimited || !effects.stopMessages.isEmpty
                || classification.notSent)
        return effects
    }

    /// SIGINT or SIGTERM. Returns whether it was the first.
    package mutating func signalled(_ number: Int32) -> Bool {
        let first = stops.signal == nil
        if first { stops.signal = number }
        return first
    }

    /// Time the run waited before its dispatcher began (a listing at the start), against --max-wait.
    package mutating func waitedBeforeSending(_ seconds: Double) {
        budget.spend(seconds)
    }

    /// What the run has waited so far against --max-wait (the rest is the end's listing's).
    package var waited: Double { budget.spent }

    /// One listing settles what the run left uncertain, except after a stop (a signal, an auth
    /// or configuration stop, an unreachable server, a wait too long).
    package var reconcilesAtEnd: Bool { !stops.any }

    /// Takes the informational lines gathered so far.
    package mutating func takeNotices() -> [Notice] {
        defer { notices.removeAll() }
        return notices
    }

    /// After the dispatcher stopped and the requests in flight were drained: decide the held
    /// refusals (nothing more can arrive to decide them). The caller hands them over.
    package mutating func finalRecords() -> (records: [CompletedAttempt], stopMessage: String?) {
        settleHeld()
    }

    /// The stop the run ended with, when it was for verification (a wrong key or clock): the
    /// rows it sent may have been assigned, and the caller parks them `uncertain`.
    package var verificationStop: EarlyStop.Kind? { early.verificationStop }

    // MARK: rules

    private mutating func handOver(_ records: [CompletedAttempt], into effects: inout Effects) {
        for item in records { tally.count(item.classification) }
        handedOverSinceClaim += records.count
        unflushed += records.count
        effects.record += records
    }

    private mutating func shouldWake(changedRun: Bool) -> Bool {
        guard let sleep = sleeping else { return false }
        let wake: Bool
        switch sleep.wakeOn {
        case .anyReply: wake = true
        case .freeSlots(let slots): wake = concurrency - inFlight >= slots || inFlight == 0 || changedRun
        case .time: wake = changedRun || inFlight == 0
        }
        return wake
    }

    /// Decides the replies still held, once nothing more can arrive to decide them: those of a
    /// server that may be the wrong one (`EarlyStopGate`), and unsigned refusals (`RefusalGate`).
    /// Returns them, and the message of a stop this decided.
    private mutating func settleHeld() -> (records: [CompletedAttempt], stopMessage: String?) {
        var stopMessage: String?
        let settled = early.settle()
        var records = settled.record
        if let message = settled.stop, stops.config == nil && stops.signal == nil {
            stops.config = message
            stopMessage = message
        }
        let hadAuth = stops.auth != nil
        let (held, stopsRun) = refusals.settle()
        if stopsRun || stops.auth != nil {
            let message =
                stops.auth
                ?? "every request was refused before it reached the license server: \(held.count) row(s) got an unsigned refusal and no signed reply came back in this run (a proxy, gateway, firewall or IP filter in front of the server refuses this client, or the API key is refused before the server sees it)"
            // Only a run that ended for no other reason ends as an auth stop.
            if stops.auth == nil && stops.signal == nil && stops.config == nil {
                stops.auth = message
            }
            records += held.map { Self.asAuthStop($0, message: message) }
        } else {
            records += held
        }
        if !hadAuth, let message = stops.auth { stopMessage = stopMessage ?? message }
        for item in records { tally.count(item.classification) }
        handedOverSinceClaim += records.count
        unflushed += records.count
        return (records, stopMessage)
    }

    private mutating func giveUpUnreachable(now: Double, why: String?) {
        let seconds = Int(breaker.unreachableFor(now: now).rounded())
        let last = breaker.lastError ?? "no connection"
        let message =
            "the license server is unreachable (\(breaker.consecutive) tries in a row never left, for \(seconds) s; last: \(last))"
            + (why.map { "; \($0)" } ?? "")
        if stops.unreachable == nil { stops.unreachable = message }
        notices.append(
            Notice(
                level: .error,
                text: "stopping the run: \(message); rows not sent stay pending or retry, and the next run sends them"))
    }

    private mutating func stopForQuota(_ why: String, reopensAt: Double) {
        let message =
            "\(why), beyond the \(Int(budget.remaining.rounded(.down))) s left of --max-wait \(Int(maxWait)) s"
        if stops.quota == nil {
            stops.quota = message
            stops.quotaReopensAt = reopensAt
        }
        notices.append(
            Notice(
                level: .warning, text: "stopping the run: \(message); the rows not sent stay pending for the next run"))
    }

    private mutating func stopForMaxWait(_ message: String) {
        if stops.maxWait == nil { stops.maxWait = message }
        notices.append(
            Notice(
                level: .warning, text: "stopping the run: \(message); the rows not sent stay pending for the next run"))
    }

    private static func asAuthStop(_ attempt: CompletedAttempt, message: String) -> CompletedAttempt {
        var stopped = attempt
        stopped.classification = Classifier.asAuthStop(attempt.classification, message: message)
        stopped.nextAttemptAt = nil
        return stopped
    }
}
