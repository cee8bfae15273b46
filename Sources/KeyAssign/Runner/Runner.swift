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
/// Roles: `RunLock` keeps runs apart, `Rescuer` recovers rows a dead run left in flight, the
/// dispatch loop here waits for a free slot, a token (`TokenBucket`) and the end of any 429
/// pause, then `Claimer` commits a batch of rows `in_flight` and they are sent at once through
/// `AssignClient`. Each reply is verified and classified (`Classifier`) on the transport's serial
/// reply queue, and `Completer` commits the results in batches. Callable in-process (`keyassign demo`).
public final class Runner: @unchecked Sendable {
    private let options: RunOptions
    private let verifier: ReplyVerifier
    private let logger: Logger
    private let backoff: Backoff
    private let wake = DispatchSemaphore(value: 0)

    private let lock = NSLock()
    private var inFlight = 0
    private var stopSignal: Int32?
    private var authStop: String?
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
        self.bucket = TokenBucket(rate: options.rate, burst: options.burst)
        self.minimumClaim = max(1, min(16, options.concurrency / 4))
    }

    /// Fails with `KeyAssignError(.locked)` when a live run holds the database: `sync` checks
    /// this before importing, so that a second cron job exits at once. (The run itself takes
    /// the lock properly; this is only the early answer.)
    public static func checkNotLocked(databasePath: String) throws {
        do {
            let db = try Database(path: databasePath)
            try RunLock.checkFree(db)
        } catch let error as DatabaseError {
            throw error.asKeyAssignError
        }
    }

    /// Runs until nothing is due (waiting up to --max-wait for scheduled retries), a signal,
    /// or an auth refusal. The summary's `exitStatus` is what the process should exit with.
    /// Throws `KeyAssignError` for a lock held by another run (75) or a database failure (74).
    public func run() throws -> RunSummary {
        try options.validate()
        let db: Database
        do {
            db = try Database(path: options.databasePath)
        } catch let error as DatabaseError {
            throw error.asKeyAssignError
        }
        let runID: Int64
        do {
            runID = try RunLock.acquire(db, server: options.endpoint.display, logger: logger)
        } catch let error as DatabaseError {
            throw error.asKeyAssignError
        }
        let shared = SharedDatabase(db)
        defer {
            shared.with { db in
                do { try RunLock.release(db, runID: runID) } catch {
                    logger.error("could not release the run lock: \(error)")
                }
            }
        }
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
        return stopSignal != nil || authStop != nil
    }

    private var inFlightNow: Int {
        lock.lock()
        defer { lock.unlock() }
        return inFlight
    }

    private func dispatchLoop(_ shared: SharedDatabase, claimer: Claimer, client: AssignClient,
                              completer: Completer) throws {
        var idleWaited = 0.0
        let concurrency = options.concurrency
        while true {
            if shouldStop() { return }
            if let error = completer.error { throw error }
            let free = concurrency - inFlightNow
            if free <= 0 {
                _ = wake.wait(timeout: .now() + .milliseconds(50))
                continue
            }
            let now = Timestamps.monotonic()
            let tokens = bucket.available(now: now)
            if tokens <= 0 {
                let at = bucket.nextAvailable(now: now)
                waitUntil(monotonic: at)
                continue
            }
            // When slots, not tokens, are what is short, wait for a few to free up: one
            // claim transaction per handful of rows instead of one per row.
            if free < minimumClaim && tokens > free && inFlightNow > 0 {
                _ = wake.wait(timeout: .now() + .milliseconds(20))
                continue
            }
            let limit = min(free, tokens, 64)
            let rows = try shared.with { try claimer.claim($0, limit: limit, now: Timestamps.now()) }
            if rows.isEmpty {
                if inFlightNow > 0 {
                    _ = wake.wait(timeout: .now() + .milliseconds(50))
                    continue
                }
                // Nothing in flight: commit what came back, since it may have made rows due.
                try completer.flushNow()
                let wall = Timestamps.now()
                guard let due = try shared.with({ try claimer.nextRetryDue($0) }) else { return }
                let wait = due - wall
                if wait <= 0 { continue }
                if idleWaited + wait > options.maxWait {
                    if options.progress != .quiet {
                        logger.info("the next retry is due in \(Int(wait.rounded(.up))) s, beyond --max-wait; leaving it for the next run")
                    }
                    return
                }
                let before = Timestamps.monotonic()
                waitUntil(monotonic: before + wait)
                idleWaited += Timestamps.monotonic() - before
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
        let classification = Classifier.classify(result, verdict: verdict, maybeDelivered: row.maybeDelivered,
                                                 attempts: row.attempts, maxAttempts: options.maxAttempts)
        var nextAttemptAt: Double?
        if classification.rateLimited {
            let seconds = RetryAfter.seconds(header: retryAfterHeader, body: reply ?? [], now: endedWall)
            let end = bucket.pause(seconds: seconds, now: endedMono)
            nextAttemptAt = endedWall + max(0, end - endedMono)
        } else {
            if status != nil { bucket.noteNotRateLimited() }
            if classification.state == .retry {
                nextAttemptAt = endedWall + backoff.delay(afterAttempt: row.attempts)
            }
        }
        completer?.add(CompletedAttempt(row: row, classification: classification, nextAttemptAt: nextAttemptAt,
                                        startedAt: startedWall, endedAt: endedWall,
                                        latencyMS: (endedMono - startedMono) * 1000, httpStatus: status, reply: reply))
        var firstAuthStop: String?
        lock.lock()
        inFlight -= 1
        // Waking the dispatcher costs a futex call on both sides: do it when it can act.
        let wakeDispatcher = inFlight == 0 || options.concurrency - inFlight == minimumClaim
            || classification.rateLimited || classification.authStop != nil
        outcomeCounts[classification.outcome, default: 0] += 1
        switch classification.state {
        case .assigned, .rejected, .uncertain, .failed: finished += 1
        default: break
        }
        if case .untrusted? = verdict { untrusted += 1 }
        if classification.rateLimited { rateLimited += 1 }
        if let message = classification.authStop, authStop == nil {
            authStop = message
            firstAuthStop = message
        }
        lock.unlock()
        if let firstAuthStop {
            logger.error("stopping the run: \(firstAuthStop); sending nothing more, unanswered rows go back to pending")
        }
        if wakeDispatcher { wake.signal() }
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
        if let auth {
            status = .authStopped
            stopReason = auth
        } else if let signal {
            status = signal == SIGINT ? .interrupted : .terminated
            stopReason = signal == SIGINT ? "SIGINT" : "SIGTERM"
        } else if uncertain + failed + retryLeft + pendingLeft > 0 {
            status = .someFailed
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
        let temporary = path + ".tmp-\(getpid())"
        do {
            try Data((summary.json() + "\n").utf8).write(to: URL(fileURLWithPath: temporary))
            if rename(temporary, path) != 0 {
                throw KeyAssignError(.ioError, "cannot write --summary-json \(path): \(String(cString: strerror(errno)))")
            }
        } catch let error as KeyAssignError {
            unlink(temporary)
            throw error
        } catch {
            unlink(temporary)
            throw KeyAssignError(.ioError, "cannot write --summary-json \(path): \(error.localizedDescription)")
        }
    }
}
