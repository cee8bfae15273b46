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
/// Every decision is `RunStateMachine`'s; this class carries out its actions. Roles:
/// `DatabaseLock` keeps writers apart, `WorkQueue.rescue` recovers rows a dead run left in
/// flight, the machine says when to claim how many rows, when to wait and when to stop, then
/// `WorkQueue.claim` commits a batch of rows `in_flight` and they are sent at once through
/// `AssignClient`. Each reply is verified and classified (`RowReply.judge`) on the transport's
/// serial reply queue, handed to the machine, and `Completer` commits the results in batches.
/// Callable in-process (`keyassign demo`).
public final class Runner: Sendable {
    private let options: RunOptions
    private let verifier: ReplyVerifier
    private let logger: Logger
    private let redaction: ReplyRedaction
    private let clock: any RunClock
    /// The server's quotas (`--rate N/WINDOW`, X-RateLimit-*, a long Retry-After), kept across runs.
    private let quota: RunQuota
    /// Wakes the dispatcher: an event the machine says it waits for, or a signal.
    private let wake = DispatchSemaphore(value: 0)
    /// The dispatcher, the reply queue, the signal handlers and the progress line share it.
    private let machine: Mutex<RunStateMachine>

    public init(options: RunOptions, verifier: ReplyVerifier, logger: Logger) {
        self.options = options
        self.verifier = verifier
        self.logger = logger
        self.redaction = ReplyRedaction(apiKey: options.apiKey)
        let clock = SystemRunClock()
        self.clock = clock
        let quota = RunQuota(limits: options.rateLimits, logger: logger, quiet: options.progress == .quiet)
        self.quota = quota
        self.machine = Mutex(
            RunStateMachine(
                options: options, limiter: RunStateMachine.standardLimiter(options, now: clock.monotonic()),
                quota: quota,
                signingKeys: verifier.keyRing.signingKeys))
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
        let startedWall = clock.wall()
        let startedMono = clock.monotonic()
        // The key listing (Reconcile/): rescued rows are checked before any is sent again.
        let reconciliation = RunReconciliation(
            options: options, keyRing: verifier.keyRing, logger: logger, clock: clock)
        let (recovered, total) = try shared.with { queue -> (Int, Int) in
            let recovered = try queue.rescue(runID: runID, now: startedWall)
            // Earlier nights' rows: fresh budgets, passing failures back (CarryOver).
            let renewed = try CarryOver.renew(queue.database, now: startedWall, reconcile: options.reconcile)
            try reconciliation.afterRescue(queue.database, runID: runID, recovered: recovered, renewed: renewed)
            try CarryOver.freshBudgets(queue.database)
            try quota.start(queue.database)
            return (recovered, try queue.rowsToSend())
        }
        // A listing fetched before the dispatcher (rows rescued from a dead run) waited already.
        machine.withLock { $0.waitedBeforeSending(reconciliation.waited) }
        if recovered > 0 {
            logger.warning(
                "recovered \(recovered) row(s) left in flight by a run that died; a later 801 for them counts as uncertain"
            )
        }
        let client = try AssignClient(
            .init(
                endpoint: options.endpoint, apiKey: options.apiKey, body: options.body,
                concurrency: options.concurrency, timeout: options.timeout,
                caFile: options.caFile))
        // A failed commit wakes the dispatcher, which then stops the run (it checks `error`).
        let completer = Completer(queue: shared, runID: runID) { [wake] in wake.signal() }
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
            logger.info(
                "run \(runID): \(total) row(s) to send to \(options.endpoint.display) (rate \(options.rate > 0 ? "\(options.rate)/s" : "unlimited"), concurrency \(options.concurrency))"
            )
            logger.info(
                "run \(runID): proxy: \(ProxyChoice.decide(url: options.endpoint.url.absoluteString).description)")
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
        if let kind = machine.withLock({ $0.verificationStop }) {
            // Sent rows may have been assigned: uncertain, for reconciliation once the key or clock is right.
            try shared.with {
                _ = try CarryOver.parkMaybeDelivered(
                    $0.database, runID: runID,
                    reason: kind == .signature
                        ? "sent while replies failed signature verification (check --public-key): may have been assigned"
                        : "sent while replies were stale (check the clock): may have been assigned")
            }
        }
        // One listing settles what the run left uncertain (not after a stop).
        if machine.withLock({ $0.reconcilesAtEnd }) {
            let waited = machine.withLock { $0.waited }
            try shared.with { try reconciliation.atEnd($0.database, runID: runID, runWaited: waited) }
        }
        progress.stop(settled: try? shared.with { try ProgressReporter.rowsByState($0.database, runID: runID) })

        let summary = try shared.with { queue in
            try summarize(queue, runID: runID, startedWall: startedWall, startedMono: startedMono, recovered: recovered)
        }
        try shared.with { try quota.finish($0.database, summary: summary) }
        recordEnd(
            shared, runID: runID, status: ExitStatus(rawValue: summary.exitStatus) ?? .someFailed, summary: summary)
        if let path = options.summaryJSONPath {
            try writeSummary(summary, to: path)
        }
        return summary
    }

    // MARK: carrying out the machine's actions

    private var inFlightNow: Int {
        machine.withLock { $0.inFlight }
    }

    private func dispatchLoop(_ shared: SharedQueue, runID: Int64, client: AssignClient, completer: Completer) throws {
        while true {
            if let error = completer.error { throw error }
            let (action, notices) = machine.withLock { machine in
                (machine.next(now: clock.monotonic()), machine.takeNotices())
            }
            log(notices)
            switch action {
            case .stop:
                return
            case .wait(let until):
                waitUntil(monotonic: until)
            case .record(let attempts):
                for attempt in attempts { completer.add(attempt) }
            case .flush:
                try completer.flushNow()
                machine.withLock { $0.flushed() }
            case .findNextDue:
                let due = try shared.with { try $0.nextRetryDue() }
                machine.withLock { $0.nextDue(due, wallNow: clock.wall(), now: clock.monotonic()) }
            case .claim(let limit):
                let rows = try shared.with { try $0.claim(runID: runID, limit: limit, now: clock.wall()) }
                let claimedAt = clock.monotonic()
                machine.withLock { $0.claimed(rows.count, now: claimedAt) }
                // The machine counted them against the limits; the quota keeps them in the database.
                try quota.take(rows.count, now: claimedAt, shared: shared)
                for row in rows {
                    let startedMono = clock.monotonic()
                    let startedWall = clock.wall()
                    // The completion runs on the transport's reply queue: verifying there
                    // saves a thread hop per reply.
                    client.send(row.request) { [self] result in
                        complete(
                            row, result: result, startedWall: startedWall, startedMono: startedMono,
                            completer: completer)
                    }
                }
            }
        }
    }

    private func log(_ notices: [RunStateMachine.Notice]) {
        for notice in notices {
            switch notice.level {
            case .info: logger.info("\(notice.text)")
            case .warning: logger.warning("\(notice.text)")
            case .error: logger.error("\(notice.text)")
            }
        }
    }

    /// Sleeps until a monotonic time (nil: until woken), waking early for the events the
    /// machine asked to be woken for, for signals and for a failed recorder: every one of them
    /// signals `wake`, so nothing is found by looking now and then.
    private func waitUntil(monotonic target: Double?) {
        guard let target else {
            wake.wait()
            return
        }
        waitForWake(until: target)
    }

    /// One wait on `wake`, until a monotonic time at the latest.
    private func waitForWake(until target: Double) {
        let delay = target - clock.monotonic()
        if delay <= 0 { return }
        _ = wake.wait(timeout: .now() + .nanoseconds(Int(min(delay, 86_400) * 1e9)))
    }

    /// Waits for the requests in flight. After a signal the wait is bounded by --timeout and
    /// what is still running is then cancelled, so that every row is recorded. The reply that
    /// leaves nothing in flight wakes it (`complete`).
    private func drain(client: AssignClient) {
        let signalled = machine.withLock { $0.stops.signal != nil }
        let limit = clock.monotonic() + options.timeout + (signalled ? 0 : 5)
        while inFlightNow > 0 && clock.monotonic() < limit { waitForWake(until: limit) }
        if inFlightNow > 0 {
            logger.warning(
                "cancelling \(inFlightNow) request(s) still in flight; they are recorded as retry (may have reached the server)"
            )
            client.cancelAll()
            let cancelLimit = clock.monotonic() + 5
            while inFlightNow > 0 && clock.monotonic() < cancelLimit { waitForWake(until: cancelLimit) }
        }
    }

    /// Runs on the verify queue: verify, classify, schedule, hand to the machine and, in the
    /// same critical section, its attempts to the completer (the machine's handing-over rule).
    private func complete(
        _ row: ClaimedRow, result: TransportResult, startedWall: Double, startedMono: Double,
        completer: Completer
    ) {
        var jitter = SystemRandomNumberGenerator()
        let reply = RowReply.judge(
            row, result: result, verifier: verifier, options: options, redaction: redaction,
            startedWall: startedWall, startedMono: startedMono, endedWall: clock.wall(),
            endedMono: clock.monotonic(), jitter: &jitter)
        let (effects, drained) = machine.withLock { machine in
            let effects = machine.replied(reply)
            for attempt in effects.record { completer.add(attempt) }
            return (effects, machine.inFlight == 0)
        }
        for message in effects.stopMessages {
            logger.error("stopping the run: \(message); sending nothing more, unanswered rows go back to pending")
        }
        // The last reply in flight also ends `drain`'s wait (a spare wake only costs the
        // dispatcher one more look at the machine).
        if effects.wakeDispatcher || drained { wake.signal() }
    }

    /// Decides the unsigned refusals still held, once nothing more can arrive to decide them
    /// (see `RefusalGate`).
    private func settleRefusals(_ completer: Completer) {
        let stopMessage = machine.withLock { machine in
            let (records, message) = machine.finalRecords()
            for attempt in records { completer.add(attempt) }
            return message
        }
        if let stopMessage {
            logger.error("stopping the run: \(stopMessage); those rows go back to pending")
        }
    }

    private func snapshot() -> ProgressReporter.Snapshot {
        let now = clock.monotonic()
        return machine.withLock { machine in
            ProgressReporter.Snapshot(
                finished: machine.tally.finished, requests: machine.tally.requests, inFlight: machine.inFlight,
                rows: machine.tally.finalStates, retries: machine.tally.outcomes[.retry] ?? 0,
                rateLimited: machine.tally.rateLimited,
                unreachable: machine.breaker.isOpen
                    ? (
                        Int(machine.breaker.unreachableFor(now: now).rounded()),
                        machine.breaker.lastError ?? "no connection"
                    )
                    : nil)
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
        let (first, flying) = machine.withLock { machine in (machine.signalled(number), machine.inFlight) }
        let name = number == SIGINT ? "SIGINT" : "SIGTERM"
        if !first {
            // The rows in flight stay `in_flight`; the next run recovers them.
            let message =
                "keyassign: second \(name): exiting now; the next run recovers the \(flying) row(s) in flight\n"
            _ = message.withCString { write(2, $0, strlen($0)) }
            _exit(128 + number)
        }
        logger.warning(
            "\(name): starting no new requests; waiting up to \(options.timeout) s for \(flying) in flight (send it again to exit now)"
        )
        wake.signal()
    }

    // MARK: the end

    private func summarize(
        _ queue: WorkQueue, runID: Int64, startedWall: Double, startedMono: Double,
        recovered: Int
    ) throws -> RunSummary {
        let touched = try queue.statesOfRowsTouched(byRun: runID)
        let queued = try queue.queuedRowsByState()
        let (stops, tally, pauses) = machine.withLock { ($0.stops, $0.tally, $0.limiter.pauses) }
        var summary = RunSummary(
            runID: runID, server: options.endpoint.display, database: queue.database.path,
            startedWall: startedWall, seconds: clock.monotonic() - startedMono,
            tally: tally, pauses: pauses, recovered: recovered,
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
