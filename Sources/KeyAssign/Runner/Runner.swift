import Dispatch
import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sends every due row of the work table to the license server and records each outcome.
///
/// Roles: `DatabaseLock` keeps writers apart, `WorkQueue.rescue` recovers rows a dead run left in
/// flight, the dispatch loop here waits for a free slot, a token (`TokenBucket`) and the end of
/// any 429 pause, then `WorkQueue.claim` commits a batch of rows `in_flight` and they are sent at
/// once through `AssignClient`. Each reply is verified and classified (`Classifier`) on the
/// transport's serial reply queue, and `Completer` commits the results in batches. Callable
/// in-process (`keyassign demo`).
public final class Runner: Sendable {
    private let options: RunOptions
    private let verifier: ReplyVerifier
    private let logger: Logger
    private let backoff: Backoff
    private let redaction: ReplyRedaction
    private let wake = DispatchSemaphore(value: 0)
    private let bucket: TokenBucket
    /// The server's quotas (`--rate N/WINDOW`, X-RateLimit-*, a long Retry-After), kept across runs.
    private let quota: RunQuota
    /// Claims wait for this many free slots while requests are in flight.
    private let minimumClaim: Int
    /// What the dispatcher, the reply queue, the signal handlers and the progress line share.
    private let state: Mutex<State>

    private struct State {
        var inFlight = 0
        var stops = RunStops()
        var breaker: CircuitBreaker
        var refusals = RefusalGate<CompletedAttempt>()
        /// A wrong --public-key, clock or --server stops the run after a handful of replies.
        var early: EarlyStopGate
        var tally = RunTally()
        /// What the run has waited, against --max-wait: its listings and its dispatcher.
        var waited = 0.0
    }

    public init(options: RunOptions, verifier: ReplyVerifier, logger: Logger) {
        self.options = options
        self.verifier = verifier
        self.logger = logger
        self.backoff = Backoff(base: options.backoffBase, cap: options.backoffCap)
        self.redaction = ReplyRedaction(apiKey: options.apiKey)
        self.bucket = TokenBucket(rate: options.rate, burst: options.burst)
        self.quota = RunQuota(limits: options.rateLimits, logger: logger, quiet: options.progress == .quiet)
        self.minimumClaim = max(1, min(16, options.concurrency / 4))
        self.state = Mutex(State(breaker: CircuitBreaker(window: options.maxWait),
                                 early: EarlyStopGate(keys: verifier.keyRing.signingKeys, maxClockSkew: options.maxClockSkew,
                                                      url: options.endpoint.display)))
    }

    /// Runs until nothing is due (waiting up to --max-wait for scheduled retries), a signal,
    /// or an auth refusal. The summary's `exitStatus` is what the process should exit with.
    /// Throws `KeyAssignError` for a database held by another writer (75), and `DatabaseError`
    /// for a database failure (74).
    public func run() throws -> RunSummary {
        try options.validate()
        // Held until this function returns; the kernel drops it if the process dies first.
        let lock = try DatabaseLock.acquire(databasePath: options.databasePath, command: "run")
        defer { lock?.release() }
        let db = try Database(path: options.databasePath)
        // keyassign's own writers are kept out by the lock; a foreign one (the sqlite3 shell, a
        // backup tool writing, an older keyassign) may still hold SQLite's write lock for a
        // while. Waiting a minute for it beats failing with a batch of verified results unsaved.
        db.setBusyTimeout(seconds: 60)
        let runID = try RunRecord.open(db, server: options.endpoint.display, logger: logger)
        lock?.noteRun(runID, command: "run")
        let shared = SharedQueue(db)
        do {
            return try runLocked(shared, runID: runID)
        } catch {
            // The runs row records the status the process is about to end with.
            recordEnd(shared, runID: runID, status: ExitStatus(for: error), summary: nil)
            throw error
        }
    }

    private func runLocked(_ shared: SharedQueue, runID: Int64) throws -> RunSummary {
        let startedWall = Timestamps.now()
        let startedMono = Timestamps.monotonic()
        // The key listing (Reconcile/): rescued rows are checked before any is sent again.
        let reconciliation = RunReconciliation(options: options, keyRing: verifier.keyRing, logger: logger)
        let (recovered, total) = try shared.with { queue -> (Int, Int) in
            let recovered = try queue.rescue(runID: runID, now: startedWall)
            // Earlier nights' rows: fresh budgets, passing failures back (CarryOver).
            let renewed = try CarryOver.renew(queue.database, now: startedWall, reconcile: options.reconcile)
            try reconciliation.afterRescue(queue.database, runID: runID, recovered: recovered, renewed: renewed)
            try CarryOver.freshBudgets(queue.database)
            try quota.start(queue.database)
            return (recovered, try queue.rowsToSend())
        }
        state.withLock { $0.waited = reconciliation.waited }
        if recovered > 0 {
            logger.warning("recovered \(recovered) row(s) left in flight by a run that died; a later 801 for them counts as uncertain")
        }
        let client = try AssignClient(.init(endpoint: options.endpoint, apiKey: options.apiKey, body: options.body,
                                            concurrency: options.concurrency, timeout: options.timeout,
                                            caFile: options.caFile))
        let completer = Completer(queue: shared, runID: runID)
        completer.start()
        let signals = options.handleSignals ? installSignalHandlers() : []
        defer {
            for source in signals { source.cancel() }
            if options.handleSignals {
                signal(SIGINT, SIG_DFL)
                signal(SIGTERM, SIG_DFL)
            }
        }
        if options.progress != .quiet {
            logger.info("run \(runID): \(total) row(s) to send to \(options.endpoint.display) (rate \(options.rate > 0 ? "\(options.rate)/s" : "unlimited"), concurrency \(options.concurrency))")
            logger.info("run \(runID): proxy: \(ProxyChoice.decide(url: options.endpoint.url.absoluteString).description)")
        }
        let progress = ProgressReporter(mode: options.progress, total: total, logger: logger) { [self] in snapshot() }
        progress.start()
        defer { progress.stop() }  // on a throw; the normal end stops it after the reconciliation

        var loopError: Error?
        do {
            try dispatchLoop(shared, runID: runID, client: client, completer: completer)
        } catch {
            loopError = error
        }
        drain(client: client)
        settleRefusals(completer)
        do {
            try completer.finish()
        } catch {
            loopError = loopError ?? error
        }
        if let loopError { throw loopError }
        if let kind = state.withLock({ $0.early.verificationStop }) {
            // Sent rows may have been assigned: uncertain, for reconciliation once the key or clock is right.
            try shared.with { _ = try CarryOver.parkMaybeDelivered($0.database, runID: runID, reason: kind == .signature
                ? "sent while replies failed signature verification (check --public-key): may have been assigned"
                : "sent while replies were stale (check the clock): may have been assigned") }
        }
        // One listing settles what the run left uncertain (not after a signal or an auth stop).
        if !shouldStop() {
            let waited = state.withLock { $0.waited }
            try shared.with { try reconciliation.atEnd($0.database, runID: runID, runWaited: waited) }
        }
        progress.stop(settled: try? shared.with { try ProgressReporter.rowsByState($0.database, runID: runID) })

        let summary = try shared.with { queue in
            try summarize(queue, runID: runID, startedWall: startedWall, startedMono: startedMono, recovered: recovered)
        }
        try shared.with { try quota.finish($0.database, summary: summary) }
        recordEnd(shared, runID: runID, status: ExitStatus(rawValue: summary.exitStatus) ?? .someFailed, summary: summary)
        if let path = options.summaryJSONPath {
            try writeSummary(summary, to: path)
        }
        return summary
    }

    // MARK: dispatching

    private func shouldStop() -> Bool {
        state.withLock { $0.stops.any }
    }

    private var inFlightNow: Int {
        state.withLock { $0.inFlight }
    }

    private func dispatchLoop(_ shared: SharedQueue, runID: Int64, client: AssignClient, completer: Completer) throws {
        let concurrency = options.concurrency
        // Waiting the dispatcher did, against --max-wait.
        var budget = WaitBudget(limit: options.maxWait)
        // A listing fetched before the loop (rows rescued from a dead run) waited already.
        budget.spend(state.withLock { $0.waited })
        defer { state.withLock { $0.waited = budget.spent } }
        while true {
            if shouldStop() { return }
            if let error = completer.error { throw error }
            let free = concurrency - inFlightNow
            if free <= 0 {
                _ = wake.wait(timeout: .now() + .milliseconds(50))
                continue
            }
            var now = Timestamps.monotonic()
            // An unreachable server gets one probe at a time, and an end.
            var breakerLimit = Int.max
            switch breakerPermission(now: now) {
            case .send(let limit):
                breakerLimit = limit
            case .awaitProbe:
                _ = wake.wait(timeout: .now() + .milliseconds(50))
                continue
            case .probeAt(let at):
                if !budget.allows(at - now) {
                    giveUpUnreachable(now: now, why: "the next try would pass --max-wait")
                    return
                }
                waitCounted(until: at, budget: &budget)
                continue
            case .giveUp:
                giveUpUnreachable(now: now, why: nil)
                return
            }
            let tokens = min(bucket.available(now: now), quota.available(now: now))
            if tokens <= 0 {
                // A quota that reopens only after --max-wait ends the run: a schedule, not a failure.
                let (quotaAt, why) = quota.nextAvailable(now: now)
                if let why, !budget.allows(quotaAt - now) {
                    stopForQuota(why, reopensAt: quota.wallTime(quotaAt), maxWait: budget.remaining)
                    return
                }
                let at = max(bucket.nextAvailable(now: now), quotaAt)
                let pauseEnd = bucket.pauseEnd
                if pauseEnd > now {
                    // A 429 pause is waiting, and --max-wait bounds it: a server that asks for an
                    // hour must not hold the run (and the database lock) for an hour.
                    let pause = pauseEnd - now
                    if !budget.allows(pause) {
                        // Named as the server asked it: what is left of it by now depends on how
                        // soon this thread looked, and the person reading wants the server's figure.
                        let asked = max(pause, bucket.askedPause)
                        stopForMaxWait("the server asked to pause \(Int(asked.rounded(.up))) s (HTTP 429), more than the \(Int(budget.remaining.rounded(.down))) s left of --max-wait \(Int(options.maxWait)) s")
                        return
                    }
                }
                let before = Timestamps.monotonic()
                waitUntil(monotonic: at)
                now = Timestamps.monotonic()
                budget.spend(min(now, pauseEnd) - before)
                continue
            }
            // When slots, not tokens, are what is short, wait for a few to free up: one
            // claim transaction per handful of rows instead of one per row.
            if free < minimumClaim && tokens > free && inFlightNow > 0 {
                _ = wake.wait(timeout: .now() + .milliseconds(20))
                continue
            }
            let limit = min(free, tokens, 64, breakerLimit)
            let recordedBefore = completer.recordedCount
            let rows = try shared.with { try $0.claim(runID: runID, limit: limit, now: Timestamps.now()) }
            if rows.isEmpty {
                if inFlightNow > 0 {
                    _ = wake.wait(timeout: .now() + .milliseconds(50))
                    continue
                }
                // Nothing in flight and nothing to claim: decide the held refusals, and commit
                // what came back, since either may have made rows due (a request that never
                // left goes back to pending).
                if settleRefusals(completer) { continue }
                try completer.flushNow()
                if completer.recordedCount != recordedBefore { continue }
                let wall = Timestamps.now()
                guard let due = try shared.with({ try $0.nextRetryDue() }) else { return }
                let wait = due - wall
                if wait <= 0 { continue }
                if !budget.allows(wait) {
                    if options.progress != .quiet {
                        logger.info("the next retry is due in \(Int(wait.rounded(.up))) s, beyond --max-wait; leaving it for the next run")
                    }
                    return
                }
                waitCounted(until: Timestamps.monotonic() + wait, budget: &budget)
                continue
            }
            bucket.take(rows.count, now: now)
            try quota.take(rows.count, now: now, shared: shared)
            state.withLock { state in
                state.inFlight += rows.count
                state.tally.requests += rows.count
            }
            for row in rows {
                let startedMono = Timestamps.monotonic()
                let startedWall = Timestamps.now()
                // The completion runs on the transport's reply queue: verifying there
                // saves a thread hop per reply.
                client.send(row.request) { [self] result in
                    complete(row, result: result, startedWall: startedWall, startedMono: startedMono,
                             completer: completer)
                }
            }
        }
    }

    private func breakerPermission(now: Double) -> CircuitBreaker.Permission {
        state.withLock { $0.breaker.permission(now: now, inFlight: $0.inFlight) }
    }

    /// Waits until a monotonic time (or a wakeup), counting the time against --max-wait.
    private func waitCounted(until target: Double, budget: inout WaitBudget) {
        let before = Timestamps.monotonic()
        waitUntil(monotonic: target)
        budget.spend(Timestamps.monotonic() - before)
    }

    private func giveUpUnreachable(now: Double, why: String?) {
        let message = state.withLock { state in
            let seconds = Int(state.breaker.unreachableFor(now: now).rounded())
            let last = state.breaker.lastError ?? "no connection"
            let message = "the license server is unreachable (\(state.breaker.consecutive) tries in a row never left, for \(seconds) s; last: \(last))"
                + (why.map { "; \($0)" } ?? "")
            if state.stops.unreachable == nil { state.stops.unreachable = message }
            return message
        }
        logger.error("stopping the run: \(message); rows not sent stay pending or retry, and the next run sends them")
    }

    private func stopForQuota(_ why: String, reopensAt: Double, maxWait remaining: Double) {
        let message = "\(why), beyond the \(Int(remaining.rounded(.down))) s left of --max-wait \(Int(options.maxWait)) s"
        state.withLock { state in
            if state.stops.quota == nil {
                state.stops.quota = message
                state.stops.quotaReopensAt = reopensAt
            }
        }
        logger.warning("stopping the run: \(message); the rows not sent stay pending for the next run")
    }

    private func stopForMaxWait(_ message: String) {
        state.withLock { state in
            if state.stops.maxWait == nil { state.stops.maxWait = message }
        }
        logger.warning("stopping the run: \(message); the rows not sent stay pending for the next run")
    }

    /// Sleeps until a monotonic time, waking early for completions and signals.
    private func waitUntil(monotonic target: Double) {
        let delay = target - Timestamps.monotonic()
        if delay <= 0 { return }
        _ = wake.wait(timeout: .now() + .nanoseconds(Int(min(delay, 3600) * 1e9)))
    }

    /// Waits for the requests in flight. After a signal the wait is bounded by --timeout and
    /// what is still running is then cancelled, so that every row is recorded.
    private func drain(client: AssignClient) {
        let signalled = state.withLock { $0.stops.signal != nil }
        let limit = Timestamps.monotonic() + options.timeout + (signalled ? 0 : 5)
        while inFlightNow > 0 && Timestamps.monotonic() < limit {
            _ = wake.wait(timeout: .now() + .milliseconds(50))
        }
        if inFlightNow > 0 {
            logger.warning("cancelling \(inFlightNow) request(s) still in flight; they are recorded as retry (may have reached the server)")
            client.cancelAll()
            let cancelLimit = Timestamps.monotonic() + 5
            while inFlightNow > 0 && Timestamps.monotonic() < cancelLimit {
                _ = wake.wait(timeout: .now() + .milliseconds(50))
            }
        }
    }

    /// Runs on the verify queue: verify, classify, schedule, hand to the completer.
    private func complete(_ row: ClaimedRow, result: TransportResult, startedWall: Double, startedMono: Double,
                          completer: Completer) {
        let endedWall = Timestamps.now()
        let endedMono = Timestamps.monotonic()
        var verdict: ReplyVerdict?
        var status: Int?
        var reply: [UInt8]?
        var retryAfterHeader: String?
        if case .response(let code, let retryAfter, let body, let rateLimit) = result {
            status = code
            reply = body
            retryAfterHeader = retryAfter
            if let rateLimit { quota.observe(rateLimit, sentAt: startedMono) }
            if !body.isEmpty && code != 429 && !(500...599).contains(code) {
                verdict = verifier.verify(body, maxAge: options.maxClockSkew, now: endedWall)
            }
        }
        // Redacted before anything logs, stores or summarises its texts.
        let classification = redaction.classification(Classifier.classify(
            result, verdict: verdict, maybeDelivered: row.maybeDelivered, attempts: row.attempts,
            maxAttempts: options.maxAttempts))
        var nextAttemptAt: Double?
        if classification.rateLimited {
            let seconds = RetryAfter.seconds(header: retryAfterHeader, body: reply ?? [], now: endedWall)
            bucket.pause(seconds: seconds, now: endedMono, sentAt: startedMono)
            if let seconds { quota.refused(retryAfter: seconds, now: endedMono) }
        } else {
            if status != nil { bucket.noteNotRateLimited(sentAt: startedMono) }
            if classification.state == .retry {
                nextAttemptAt = endedWall + backoff.delay(afterAttempt: row.attempts)
            }
        }
        let attempt = CompletedAttempt(row: row, classification: classification, nextAttemptAt: nextAttemptAt,
                                       startedAt: startedWall, endedAt: endedWall,
                                       latencyMS: (endedMono - startedMono) * 1000, httpStatus: status,
                                       reply: redaction.stored(reply, verdict: verdict), signingKey: verdict?.signingKey)
        let untrusted: Bool
        if case .untrusted? = verdict { untrusted = true } else { untrusted = false }
        let (messages, wakeDispatcher) = state.withLock { state -> ([String], Bool) in
            var record: [CompletedAttempt] = []
            var messages: [String] = []
            state.inFlight -= 1
            if untrusted { state.tally.untrusted += 1 }
            switch result {
            case .notSent(let error): state.breaker.notSent(at: endedMono, error: error)
            case .tlsFailure: break
            case .response, .maybeSent: state.breaker.reached()
            }
            if classification.unsignedRefusal {
                if let message = state.stops.auth {
                    record.append(Self.asAuthStop(attempt, message: message))
                } else if case .stop(let refused) = state.refusals.refused(attempt) {
                    let message = "every request is refused before it reaches the license server: \(refused.count) rows in a row got an unsigned HTTP \(status ?? 0) and no signed reply came back (a proxy, gateway, firewall or IP filter in front of the server refuses this client, or the API key is refused before the server sees it)"
                    state.stops.auth = message
                    messages.append(message)
                    record += refused.map { Self.asAuthStop($0, message: message) }
                }
            } else {
                if case .trusted? = verdict { record += state.refusals.verifiedReply() }
                let gated = state.early.admit(attempt, EarlyStop.observation(result, verdict: verdict, now: endedWall))
                record += gated.record
                if let message = gated.stop, state.stops.config == nil {
                    state.stops.config = message
                    messages.append(message)
                }
            }
            if let message = classification.configStop, state.stops.config == nil {
                state.stops.config = message
                messages.append(message)
            }
            if let message = classification.authStop, state.stops.auth == nil {
                state.stops.auth = message
                messages.append(message)
            }
            // Handed over before the lock goes: once `inFlight` reads 0, the dispatcher may flush
            // the completer and conclude that nothing more is due.
            for item in record {
                state.tally.count(item.classification)
                completer.add(item)
            }
            // Waking the dispatcher costs a futex call on both sides: do it when it can act.
            let wake = state.inFlight == 0 || options.concurrency - state.inFlight == minimumClaim
                || classification.rateLimited || !messages.isEmpty || classification.notSent
            return (messages, wake)
        }
        for message in messages {
            logger.error("stopping the run: \(message); sending nothing more, unanswered rows go back to pending")
        }
        if wakeDispatcher { wake.signal() }
    }

    private static func asAuthStop(_ attempt: CompletedAttempt, message: String) -> CompletedAttempt {
        var stopped = attempt
        stopped.classification = Classifier.asAuthStop(attempt.classification, message: message)
        stopped.nextAttemptAt = nil
        return stopped
    }

    /// Decides the unsigned refusals still held, once nothing more can arrive to decide them
    /// (see `RefusalGate`). True when it recorded any.
    @discardableResult
    private func settleRefusals(_ completer: Completer) -> Bool {
        let (recorded, stopMessage) = state.withLock { state -> (Bool, String?) in
            var record: [CompletedAttempt] = []
            var stopMessage: String?
            let early = state.early.settle()
            record += early.record
            if let message = early.stop, state.stops.config == nil && state.stops.signal == nil {
                state.stops.config = message
                stopMessage = message
            }
            let (held, stopsRun) = state.refusals.settle()
            if stopsRun || state.stops.auth != nil {
                let message = state.stops.auth ?? "every request was refused before it reached the license server: \(held.count) row(s) got an unsigned refusal and no signed reply came back in this run (a proxy, gateway, firewall or IP filter in front of the server refuses this client, or the API key is refused before the server sees it)"
                // Only a run that ended for no other reason ends as an auth stop.
                if state.stops.auth == nil && state.stops.signal == nil && state.stops.config == nil {
                    state.stops.auth = message
                    stopMessage = message
                }
                record += held.map { Self.asAuthStop($0, message: message) }
            } else {
                record += held
            }
            for item in record {
                state.tally.count(item.classification)
                completer.add(item)
            }
            return (!record.isEmpty, stopMessage)
        }
        if let stopMessage {
            logger.error("stopping the run: \(stopMessage); those rows go back to pending")
        }
        return recorded
    }

    private func snapshot() -> ProgressReporter.Snapshot {
        state.withLock { state in
            let now = Timestamps.monotonic()
            return ProgressReporter.Snapshot(
                finished: state.tally.finished, requests: state.tally.requests, inFlight: state.inFlight,
                rows: state.tally.finalStates, retries: state.tally.outcomes[.retry] ?? 0,
                rateLimited: state.tally.rateLimited,
                unreachable: state.breaker.isOpen
                    ? (Int(state.breaker.unreachableFor(now: now).rounded()), state.breaker.lastError ?? "no connection") : nil)
        }
    }

    // MARK: signals

    private func installSignalHandlers() -> [DispatchSourceSignal] {
        var sources: [DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global(qos: .userInitiated))
            source.setEventHandler { [self] in received(signal: number) }
            source.resume()
            sources.append(source)
        }
        return sources
    }

    private func received(signal number: Int32) {
        let (first, flying) = state.withLock { state -> (Bool, Int) in
            let first = state.stops.signal == nil
            if first { state.stops.signal = number }
            return (first, state.inFlight)
        }
        let name = number == SIGINT ? "SIGINT" : "SIGTERM"
        if !first {
            // The rows in flight stay `in_flight`; the next run recovers them.
            let message = "keyassign: second \(name): exiting now; the next run recovers the \(flying) row(s) in flight\n"
            _ = message.withCString { write(2, $0, strlen($0)) }
            _exit(128 + number)
        }
        logger.warning("\(name): starting no new requests; waiting up to \(options.timeout) s for \(flying) in flight (send it again to exit now)")
        wake.signal()
    }

    // MARK: the end

    private func summarize(_ queue: WorkQueue, runID: Int64, startedWall: Double, startedMono: Double,
                           recovered: Int) throws -> RunSummary {
        let touched = try queue.statesOfRowsTouched(byRun: runID)
        let queued = try queue.queuedRowsByState()
        let (stops, tally) = state.withLock { ($0.stops, $0.tally) }
        var summary = RunSummary(runID: runID, server: options.endpoint.display, database: queue.database.path,
                                 startedWall: startedWall, seconds: Timestamps.monotonic() - startedMono,
                                 tally: tally, pauses: bucket.pauses, recovered: recovered,
                                 touched: touched, queued: queued, stops: stops)
        summary.failedEarlier = try CarryOver.failedEarlier(queue.database, runID: runID)
        return summary
    }

    private func recordEnd(_ shared: SharedQueue, runID: Int64, status: ExitStatus, summary: RunSummary?) {
        shared.with { queue in
            RunRecord.close(queue.database, runID: runID, status: status, summary: summary, logger: logger)
        }
    }

    private func writeSummary(_ summary: RunSummary, to path: String) throws {
        let output = try TextOutput(path: path)
        output.write(summary.json() + "\n")
        try output.finish()
    }
}
