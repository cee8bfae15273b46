import Dispatch
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sends every due row of the work table to the license server and records each outcome.
///
/// Roles: `DatabaseLock` keeps writers apart, `Rescuer` recovers rows a dead run left in flight, the
/// dispatch loop here waits for a free slot, a token (`TokenBucket`) and the end of any 429
/// pause, then `Claimer` commits a batch of rows `in_flight` and they are sent at once through
/// `AssignClient`. Each reply is verified and classified (`Classifier`) on the transport's serial
/// reply queue, and `Completer` commits the results in batches. Callable in-process (`keyassign demo`).
public final class Runner: @unchecked Sendable {
    private let options: RunOptions
    private let verifier: ReplyVerifier
    private let logger: Logger
    private let backoff: Backoff
    private let redaction: ReplyRedaction
    private let wake = DispatchSemaphore(value: 0)

    private let lock = NSLock()
    private var inFlight = 0
    private var stopSignal: Int32?
    private var authStop: String?
    /// The server's certificate was refused: a configuration error (exit 78).
    private var configStop: String?
    /// The server stayed unreachable for --max-wait (exit 69).
    private var unreachableStop: String?
    /// A 429 pause would have run past --max-wait (exit 1, rows left for the next run).
    private var maxWaitStop: String?
    private var breaker: CircuitBreaker
    private var refusals = RefusalGate<CompletedAttempt>()
    /// Waiting the dispatcher did, against --max-wait. Touched by the dispatcher only.
    private var budget: WaitBudget
    private var requests = 0
    private var finished = 0
    private var outcomeCounts: [String: Int] = [:]
    private var untrusted = 0
    private var rateLimited = 0

    private var bucket: TokenBucket
    /// Claims wait for this many free slots while requests are in flight.
    private let minimumClaim: Int
    private var completer: Completer?

    public init(options: RunOptions, verifier: ReplyVerifier, logger: Logger) {
        self.options = options
        self.verifier = verifier
        self.logger = logger
        self.backoff = Backoff(base: options.backoffBase, cap: options.backoffCap)
        self.redaction = ReplyRedaction(apiKey: options.apiKey)
        self.bucket = TokenBucket(rate: options.rate, burst: options.burst)
        self.minimumClaim = max(1, min(16, options.concurrency / 4))
        self.breaker = CircuitBreaker(window: options.maxWait)
        self.budget = WaitBudget(limit: options.maxWait)
    }

    /// Runs until nothing is due (waiting up to --max-wait for scheduled retries), a signal,
    /// or an auth refusal. The summary's `exitStatus` is what the process should exit with.
    /// Throws `KeyAssignError` for a database held by another writer (75) or a database failure (74).
    public func run() throws -> RunSummary {
        try options.validate()
        // Held until this function returns; the kernel drops it if the process dies first.
        let lock = try DatabaseLock.acquire(databasePath: options.databasePath, command: "run")
        defer { lock?.release() }
        let db: Database
        do {
            db = try Database(path: options.databasePath)
        } catch let error as DatabaseError {
            throw error.asKeyAssignError
        }
        // keyassign's own writers are kept out by the lock; a foreign one (the sqlite3 shell, a
        // backup tool writing, an older keyassign) may still hold SQLite's write lock for a
        // while. Waiting a minute for it beats failing with a batch of verified results unsaved.
        db.setBusyTimeout(seconds: 60)
        let runID: Int64
        do {
            runID = try RunRecord.open(db, server: options.endpoint.display, logger: logger)
        } catch let error as DatabaseError {
            throw error.asKeyAssignError
        }
        lock?.noteRun(runID, command: "run")
        let shared = SharedDatabase(db)
        do {
            return try runLocked(shared, runID: runID)
        } catch let error as DatabaseError {
            recordEnd(shared, runID: runID, status: .ioError, summary: nil)
            throw error.asKeyAssignError
        } catch {
            let status = (error as? KeyAssignError)?.status ?? .ioError
            recordEnd(shared, runID: runID, status: status, summary: nil)
            throw error
        }
    }

    private func runLocked(_ shared: SharedDatabase, runID: Int64) throws -> RunSummary {
        let startedWall = Timestamps.now()
        let startedMono = Timestamps.monotonic()
        // The key listing (Reconcile/): rescued rows are checked before any is sent again.
        let reconciliation = RunReconciliation(options: options, keyRing: verifier.keyRing, logger: logger)
        let (recovered, total) = try shared.with { db -> (Int, Int) in
            let recovered = try Rescuer.rescue(db, runID: runID, now: startedWall)
            try reconciliation.afterRescue(db, runID: runID, recovered: recovered)
            let total = try db.scalarInt("SELECT count(*) FROM work WHERE \(Claimer.dueRows) AND state <> 'in_flight'") ?? 0
            return (recovered, Int(total))
        }
        if recovered > 0 {
            logger.warning("recovered \(recovered) row(s) left in flight by a run that died; a later 801 for them counts as uncertain")
        }
        let claimer = try shared.with { try Claimer($0, runID: runID) }
        let client = try AssignClient(.init(endpoint: options.endpoint, apiKey: options.apiKey, body: options.body,
                                            concurrency: options.concurrency, timeout: options.timeout,
                                            caFile: options.caFile))
        let completer = Completer(database: shared, runID: runID)
        self.completer = completer
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
        }
        let progress = ProgressReporter(mode: options.progress, total: total, logger: logger) { [self] in snapshot() }
        progress.start()

        var loopError: Error?
        do {
            try dispatchLoop(shared, claimer: claimer, client: client, completer: completer)
        } catch {
            loopError = error
        }
        drain(client: client)
        settleRefusals()
        progress.stop()
        do {
            try completer.finish()
        } catch {
            loopError = loopError ?? error
        }
        if let loopError { throw loopError }
        // One listing settles what the run left uncertain (not after a signal or an auth stop).
        if !shouldStop() { try shared.with { try reconciliation.atEnd($0, runID: runID) } }

        let summary = try shared.with { db in
            try summarize(db, runID: runID, startedWall: startedWall, startedMono: startedMono, recovered: recovered)
        }
        recordEnd(shared, runID: runID, status: ExitStatus(rawValue: summary.exitStatus) ?? .someFailed, summary: summary)
        if let path = options.summaryJSONPath {
            try writeSummary(summary, to: path)
        }
        return summary
    }

    // MARK: dispatching

    private func shouldStop() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopSignal != nil || authStop != nil || configStop != nil || unreachableStop != nil || maxWaitStop != nil
    }

    private var inFlightNow: Int {
        lock.lock()
        defer { lock.unlock() }
        return inFlight
    }

    private func dispatchLoop(_ shared: SharedDatabase, claimer: Claimer, client: AssignClient,
                              completer: Completer) throws {
        let concurrency = options.concurrency
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
                waitCounted(until: at)
                continue
            case .giveUp:
                giveUpUnreachable(now: now, why: nil)
                return
            }
            let tokens = bucket.available(now: now)
            if tokens <= 0 {
                let at = bucket.nextAvailable(now: now)
                let pauseEnd = bucket.pauseEnd
                if pauseEnd > now {
                    // A 429 pause is waiting, and --max-wait bounds it: a server that asks for an
                    // hour must not hold the run (and the database lock) for an hour.
                    let pause = pauseEnd - now
                    if !budget.allows(pause) {
                        stopForMaxWait("the server asked to pause \(Int(pause.rounded(.up))) s (HTTP 429), more than the \(Int(budget.remaining.rounded(.down))) s left of --max-wait \(Int(options.maxWait)) s")
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
            let rows = try shared.with { try claimer.claim($0, limit: limit, now: Timestamps.now()) }
            if rows.isEmpty {
                if inFlightNow > 0 {
                    _ = wake.wait(timeout: .now() + .milliseconds(50))
                    continue
                }
                // Nothing in flight and nothing to claim: decide the held refusals, and commit
                // what came back, since either may have made rows due (a request that never
                // left goes back to pending).
                if settleRefusals() { continue }
                try completer.flushNow()
                if completer.recordedCount != recordedBefore { continue }
                let wall = Timestamps.now()
                guard let due = try shared.with({ try claimer.nextRetryDue($0) }) else { return }
                let wait = due - wall
                if wait <= 0 { continue }
                if !budget.allows(wait) {
                    if options.progress != .quiet {
                        logger.info("the next retry is due in \(Int(wait.rounded(.up))) s, beyond --max-wait; leaving it for the next run")
                    }
                    return
                }
                waitCounted(until: Timestamps.monotonic() + wait)
                continue
            }
            bucket.take(rows.count, now: now)
            lock.lock()
            inFlight += rows.count
            requests += rows.count
            lock.unlock()
            for row in rows {
                let startedMono = Timestamps.monotonic()
                let startedWall = Timestamps.now()
                // The completion runs on the transport's reply queue: verifying there
                // saves a thread hop per reply.
                client.send(row.request) { [self] result in
                    complete(row, result: result, startedWall: startedWall, startedMono: startedMono)
                }
            }
        }
    }

    private func breakerPermission(now: Double) -> CircuitBreaker.Permission {
        lock.lock()
        defer { lock.unlock() }
        return breaker.permission(now: now, inFlight: inFlight)
    }

    /// Waits until a monotonic time (or a wakeup), counting the time against --max-wait.
    private func waitCounted(until target: Double) {
        let before = Timestamps.monotonic()
        waitUntil(monotonic: target)
        budget.spend(Timestamps.monotonic() - before)
    }

    private func giveUpUnreachable(now: Double, why: String?) {
        lock.lock()
        let seconds = Int(breaker.unreachableFor(now: now).rounded())
        let last = breaker.lastError ?? "no connection"
        let message = "the license server is unreachable (\(breaker.consecutive) tries in a row never left, for \(seconds) s; last: \(last))"
            + (why.map { "; \($0)" } ?? "")
        if unreachableStop == nil { unreachableStop = message }
        lock.unlock()
        logger.error("stopping the run: \(message); rows not sent stay pending or retry, and the next run sends them")
    }

    private func stopForMaxWait(_ message: String) {
        lock.lock()
        if maxWaitStop == nil { maxWaitStop = message }
        lock.unlock()
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
        let signalled: Bool = {
            lock.lock()
            defer { lock.unlock() }
            return stopSignal != nil
        }()
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
    private func complete(_ row: ClaimedRow, result: TransportResult, startedWall: Double, startedMono: Double) {
        let endedWall = Timestamps.now()
        let endedMono = Timestamps.monotonic()
        var verdict: ReplyVerdict?
        var status: Int?
        var reply: [UInt8]?
        var retryAfterHeader: String?
        if case .response(let code, let retryAfter, let body) = result {
            status = code
            reply = body
            retryAfterHeader = retryAfter
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
        var record: [CompletedAttempt] = []
        var messages: [String] = []
        lock.lock()
        inFlight -= 1
        if case .untrusted? = verdict { untrusted += 1 }
        switch result {
        case .notSent(let error): breaker.notSent(at: endedMono, error: error)
        case .tlsFailure: break
        case .response, .maybeSent: breaker.reached()
        }
        if classification.unsignedRefusal {
            if authStop != nil {
                record.append(asAuthStop(attempt, message: authStop ?? ""))
            } else if case .stop(let refused) = refusals.refused(attempt) {
                let message = "every request is refused before it reaches the license server: \(refused.count) rows in a row got an unsigned HTTP \(status ?? 0) and no signed reply came back (a proxy, gateway, firewall or IP filter in front of the server refuses this client, or the API key is refused before the server sees it)"
                authStop = message
                messages.append(message)
                record += refused.map { asAuthStop($0, message: message) }
            }
        } else {
            if case .trusted? = verdict { record += refusals.verifiedReply() }
            record.append(attempt)
        }
        if let message = classification.configStop, configStop == nil {
            configStop = message
            messages.append(message)
        }
        if let message = classification.authStop, authStop == nil {
            authStop = message
            messages.append(message)
        }
        // Handed over before the lock goes: once `inFlight` reads 0, the dispatcher may flush the
        // completer and conclude that nothing more is due.
        for item in record {
            count(item)
            completer?.add(item)
        }
        // Waking the dispatcher costs a futex call on both sides: do it when it can act.
        let wakeDispatcher = inFlight == 0 || options.concurrency - inFlight == minimumClaim
            || classification.rateLimited || !messages.isEmpty || classification.notSent
        lock.unlock()
        for message in messages {
            logger.error("stopping the run: \(message); sending nothing more, unanswered rows go back to pending")
        }
        if wakeDispatcher { wake.signal() }
    }

    /// The run's counters for one recorded attempt (the caller holds `lock`).
    private func count(_ attempt: CompletedAttempt) {
        let classification = attempt.classification
        outcomeCounts[classification.outcome, default: 0] += 1
        switch classification.state {
        case .assigned, .rejected, .uncertain, .failed: finished += 1
        default: break
        }
        if classification.rateLimited { rateLimited += 1 }
    }

    private func asAuthStop(_ attempt: CompletedAttempt, message: String) -> CompletedAttempt {
        var stopped = attempt
        stopped.classification = Classifier.asAuthStop(attempt.classification, message: message)
        stopped.nextAttemptAt = nil
        return stopped
    }

    /// Decides the unsigned refusals still held, once nothing more can arrive to decide them
    /// (see `RefusalGate`). True when it recorded any.
    @discardableResult
    private func settleRefusals() -> Bool {
        var record: [CompletedAttempt] = []
        var stopMessage: String?
        lock.lock()
        let (held, stopsRun) = refusals.settle()
        if stopsRun || authStop != nil {
            let message = authStop ?? "every request was refused before it reached the license server: \(held.count) row(s) got an unsigned refusal and no signed reply came back in this run (a proxy, gateway, firewall or IP filter in front of the server refuses this client, or the API key is refused before the server sees it)"
            // Only a run that ended for no other reason ends as an auth stop.
            if authStop == nil && stopSignal == nil && configStop == nil {
                authStop = message
                stopMessage = message
            }
            record = held.map { asAuthStop($0, message: message) }
        } else {
            record = held
        }
        for item in record {
            count(item)
            completer?.add(item)
        }
        lock.unlock()
        if let stopMessage {
            logger.error("stopping the run: \(stopMessage); those rows go back to pending")
        }
        return !record.isEmpty
    }

    fileprivate func snapshot() -> ProgressReporter.Snapshot {
        lock.lock()
        defer { lock.unlock() }
        return ProgressReporter.Snapshot(finished: finished, requests: requests, inFlight: inFlight,
                                         outcomes: outcomeCounts, rateLimited: rateLimited)
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
        lock.lock()
        let first = stopSignal == nil
        if first { stopSignal = number }
        let flying = inFlight
        lock.unlock()
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

    /// Served by the index `attempts_by_run` (migration 2).
    static let statesOfRowsTouchedByRun = """
        SELECT state, count(*) FROM work WHERE id IN (SELECT work_id FROM attempts WHERE run_id = ?1) GROUP BY state
        """

    private func summarize(_ db: Database, runID: Int64, startedWall: Double, startedMono: Double,
                           recovered: Int) throws -> RunSummary {
        var touched: [String: Int] = [:]
        let byState = try db.prepare(Runner.statesOfRowsTouchedByRun)
        try byState.bind(1, runID)
        while try byState.step() { touched[byState.string(0) ?? "", default: 0] = Int(byState.int(1)) }
        var left: [String: Int] = [:]
        let remaining = try db.prepare("SELECT state, count(*) FROM work WHERE \(Claimer.dueRows) GROUP BY state")
        while try remaining.step() { left[remaining.string(0) ?? "", default: 0] = Int(remaining.int(1)) }

        lock.lock()
        let signal = stopSignal
        let auth = authStop
        let config = configStop
        let unreachable = unreachableStop
        let maxWait = maxWaitStop
        let requestCount = requests
        let untrustedCount = untrusted
        let limited = rateLimited
        let finishedCount = finished
        lock.unlock()

        let seconds = Timestamps.monotonic() - startedMono
        let assigned = touched["assigned"] ?? 0
        let rejected = touched["rejected"] ?? 0
        let uncertain = touched["uncertain"] ?? 0
        let failed = touched["failed"] ?? 0
        let retryLeft = left["retry"] ?? 0
        let pendingLeft = (left["pending"] ?? 0) + (left["in_flight"] ?? 0)
        let status: ExitStatus
        var stopReason: String?
        if let config {
            status = .config
            stopReason = config
        } else if let auth {
            status = .authStopped
            stopReason = auth
        } else if let signal {
            status = signal == SIGINT ? .interrupted : .terminated
            stopReason = signal == SIGINT ? "SIGINT" : "SIGTERM"
        } else if let unreachable {
            status = .unavailable
            stopReason = unreachable
        } else if uncertain + failed + retryLeft + pendingLeft > 0 {
            status = .someFailed
            stopReason = maxWait
        } else {
            status = .ok
        }
        return RunSummary(runID: runID, server: options.endpoint.display, database: db.path,
                          startedAt: Timestamps.iso8601(startedWall), endedAt: Timestamps.nowISO8601(),
                          seconds: (seconds * 1000).rounded() / 1000, requests: requestCount,
                          rowsPerSecond: seconds > 0 ? (Double(finishedCount) / seconds * 10).rounded() / 10 : 0,
                          assigned: assigned, rejected: rejected, uncertain: uncertain, failed: failed,
                          retryLeft: retryLeft, pendingLeft: pendingLeft, recovered: recovered,
                          rateLimited: limited, pauses: bucket.pauses, untrustedReplies: untrustedCount,
                          stopReason: stopReason, exitStatus: status.rawValue)
    }

    private func recordEnd(_ shared: SharedDatabase, runID: Int64, status: ExitStatus, summary: RunSummary?) {
        shared.with { db in
            do {
                let statement = try db.prepare("UPDATE runs SET ended_at = ?1, exit_status = ?2, summary = ?3 WHERE id = ?4")
                try statement.bind(1, Timestamps.nowISO8601())
                try statement.bind(2, Int64(status.rawValue))
                try statement.bind(3, summary.map { compact($0) })
                try statement.bind(4, runID)
                try statement.step()
            } catch {
                logger.error("could not record the end of run \(runID): \(error)")
            }
        }
    }

    private func compact(_ summary: RunSummary) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(summary)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    private func writeSummary(_ summary: RunSummary, to path: String) throws {
        let output = try TextOutput(path: path)
        output.write(summary.json() + "\n")
        try output.finish()
    }
}
