import Foundation
import KeyAssign
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One scenario's world, on one thread and simulated time: the real `RunStateMachine`, the
/// real `WorkQueue` SQL on a temporary SQLite file, the real `RowReply.judge` (classifier,
/// reply verifier with real RSA signatures) and the real `RunReconciliation` (listing
/// verifier, reconcile rules), around a simulated server (`SimulatedServer`) and network.
/// A process may die before any action and restarts from the database; the wall clock may
/// jump; nights follow each other, the last one clean. The invariants are checked as it goes
/// and at the end of every night (see `SimulationViolation.Invariant`).
final class SimulationWorld {
    private enum Event {
        case arrive(Int)
        case reply(Int, TransportResult)
        case timeout(Int)
    }

    private struct Scheduled {
        var time: Double
        var sequence: Int
        var event: Event
    }

    private struct Request {
        var generation: Int
        var row: ClaimedRow
        var sentWall: Double
        var sentMono: Double
        var done = false
        /// The server ran its assign logic for it (assigned, or answered 801).
        var acted = false
    }

    private enum ProcessEnd { case finished, crashed }

    let scenario: SimulationScenario
    let rules: SimulationRules
    private var random: SimulationRandom
    private let verifier: ReplyVerifier
    private let listingVerifier: ListingVerifier
    private let keyRing: KeyRing
    private let server: SimulatedServer
    private let databasePath: String
    private let logger = Logger(label: "keyassign.simulation") { _ in SwiftLogNoOpLogHandler() }
    private let redaction: ReplyRedaction
    private let options: RunOptions
    private let trace: ((String) -> Void)?

    /// True time and the client's clocks; `RunReconciliation` reads them too.
    private let clock: SimulationClock
    /// True time (Unix seconds); the client's monotonic clock reads it too.
    private var now: Double {
        get { clock.now }
        set { clock.now = newValue }
    }
    private let began: Double
    /// The client's wall clock is `now + wallOffset` (clock jumps move it).
    private var wallOffset: Double {
        get { clock.wallOffset }
        set { clock.wallOffset = newValue }
    }
    private var queue: [Scheduled] = []
    private var sequence = 0
    private var requests: [Request] = []
    private var faults: SimulationScenario.Faults
    private var partitions: [(from: Double, until: Double)] = []
    private(set) var violations: [SimulationViolation] = []
    private var actions = 0

    // The live process.
    private var generation = 0
    private var database: Database?
    private var work: WorkQueue?
    private var machine: RunStateMachine
    private var runID: Int64 = 0
    private var handedOver: [CompletedAttempt] = []
    private var reconciliation: RunReconciliation?
    private var processStart = 0.0
    private var rescued: Set<Int64> = []
    private var listingObtainableAtStart = false
    private var attemptsAtStart: [Int64: Int] = [:]
    private var sends: [Double] = []
    private var pauses: [(from: Double, until: Double)] = []
    /// The simulator's own count of 429 waves, to hold the limiter's pauses to the documented rule.
    private var waves = 0
    private var wavePauseStartedAt = -Double.infinity
    /// Rows whose verified 800 is committed: never to be sent again.
    private var committedAssigned: Set<Int64> = []
    private var rows: [(key: String, name: String, email: String)] = []

    init(
        scenario: SimulationScenario, rules: SimulationRules, replies: SignedReplyMaker, keyRing: KeyRing,
        directory: String, trace: ((String) -> Void)?
    ) throws {
        self.scenario = scenario
        self.rules = rules
        // The scenario drew its parameters from the seed; the run draws from a second stream.
        random = SimulationRandom(seed: scenario.seed ^ 0x5EED_5EED_5EED_5EED)
        verifier = ReplyVerifier(keyRing: keyRing)
        listingVerifier = ListingVerifier(keyRing: keyRing)
        self.keyRing = keyRing
        self.trace = trace
        began = 1_790_000_000 + Double(scenario.seed % 100_000)
        clock = SimulationClock(now: began)
        faults = scenario.faults
        databasePath = "\(directory)/sim-\(scenario.seed)-\(getpid()).db"
        var options = RunOptions(
            databasePath: databasePath,
            endpoint: try ServerEndpoint(base: "http://127.0.0.1:1", allowInsecureHTTP: true),
            apiKey: "simulated-api-key")
        options.rate = scenario.rate
        options.burst = scenario.burst
        options.concurrency = scenario.concurrency
        options.maxAttempts = scenario.maxAttempts
        options.timeout = scenario.timeout
        options.maxWait = scenario.maxWait
        options.backoffBase = scenario.backoffBase
        options.backoffCap = scenario.backoffCap
        options.progress = .quiet
        self.options = options
        redaction = ReplyRedaction(apiKey: options.apiKey)
        machine = RunStateMachine(options: options, limiter: RunStateMachine.standardLimiter(options, now: began))

        var inventory: [String] = []
        for index in 0..<scenario.rows {
            let key = String(format: "SIM-%05d", index)
            rows.append((key, "Buyer \(index)", "buyer\(index)@example.com"))
            if index < scenario.rows - scenario.unknownKeys { inventory.append(key) }
        }
        inventory += (0..<3).map { String(format: "SPARE-%03d", $0) }
        server = SimulatedServer(inventory: inventory, replies: replies, createdAt: began - 86_400)
        for index in 0..<min(scenario.heldByOthers, scenario.rows - scenario.unknownKeys) {
            server.preassign(
                rows[index].key, ownerName: "Other \(index)", email: "other\(index)@example.com",
                at: began - 3_600)
        }
        try importRows()
    }

    deinit {
        work = nil
        database = nil
        for suffix in ["", "-wal", "-shm"] { unlink(databasePath + suffix) }
    }

    private var wall: Double { clock.wall() }

    private func log(_ text: @autoclosure () -> String) {
        guard let trace else { return }
        trace(String(format: "%9.3f ", now - began) + text())
    }

    private func violate(_ invariant: SimulationViolation.Invariant, _ detail: String) {
        log("VIOLATION [\(invariant.rawValue)] \(detail)")
        violations.append(SimulationViolation(invariant: invariant, detail: detail, at: now - began))
    }

    /// The export, imported: one row per buyer (the importer's own SQL is not under test here).
    private func importRows() throws {
        let db = try Database(path: databasePath)
        try db.transaction {
            let stamp = Timestamps.iso8601(now)
            try db.execute(
                """
                INSERT INTO imports (id, path, size, sha256, rows_read, rows_queued, rows_duplicate, rows_conflict,
                                     rows_invalid, imported_at)
                VALUES (1, 'simulated.csv', 0, 'simulated', \(rows.count), \(rows.count), 0, 0, 0, '\(stamp)')
                """)
            let insert = try db.prepare(
                """
                INSERT INTO work (license_key, owner_name, email, idempotency_token, import_id, source_file,
                                  source_line, created_at, updated_at)
                VALUES (?1, ?2, ?3, ?4, 1, 'simulated.csv', ?5, ?6, ?6)
                """)
            for (index, row) in rows.enumerated() {
                try insert.bind(1, row.key)
                try insert.bind(2, row.name)
                try insert.bind(3, row.email)
                try insert.bind(4, "token-\(index)")
                try insert.bind(5, Int64(index + 2))
                try insert.bind(6, stamp)
                try insert.step()
                insert.reset()
            }
        }
    }

    // MARK: nights

    func run() {
        for night in 0...scenario.faultyNights {
            let clean = night == scenario.faultyNights
            faults = clean ? Self.noFaults : scenario.faults
            // The clean night's clock is right again (NTP fixed it).
            if clean { wallOffset = 0 }
            partitions = faults.partitions.map { (now + $0.start, now + $0.start + $0.length) }
            log("night \(night + 1)\(clean ? " (clean)" : "")")
            var crashes = 0
            while true {
                let end = runProcess(mayCrash: !clean && crashes < 3)
                if end == .finished { break }
                crashes += 1
                now += random.uniform(0.05...5)
                if actions > 200_000 { break }
            }
            if actions > 200_000 {
                violate(.stuck, "more than 200,000 actions: the run does not end")
                return
            }
            checkNight(clean: clean)
            now += 3_600
        }
    }

    private static let noFaults = SimulationScenario.Faults(
        delay: 0.002, jitter: 0.001, lossRequest: 0, lossReply: 0, lateReply: 0, duplicate: 0, fail5xxBefore: 0,
        fail5xxAfter: 0, rateLimited: 0, retryAfter: nil, badSignature: 0, partitions: [], listingAvailable: true,
        listingOmits: 0, crash: 0, clockJump: 0, clockJumpSize: 0, signal: 0, flush: 1)

    private func partitioned(_ time: Double) -> Bool {
        partitions.contains { time >= $0.from && time < $0.until }
    }

    // MARK: one process

    private func runProcess(mayCrash: Bool) -> ProcessEnd {
        generation += 1
        processStart = now
        sends = []
        pauses = []
        waves = 0
        wavePauseStartedAt = -Double.infinity
        do {
            let db = try Database(path: databasePath)
            database = db
            let work = WorkQueue(db)
            self.work = work
            runID = try RunRecord.open(db, server: "simulated", logger: logger)
            rescued = Set(try ids(db, "SELECT id FROM work WHERE state = 'in_flight'"))
            let recovered = try work.rescue(runID: runID, now: wall)
            listingObtainableAtStart = faults.listingAvailable && !partitioned(now)
            let reconciliation = RunReconciliation(
                options: options, keyRing: keyRing, logger: logger, clock: clock
            ) {
                [unowned self] in
                fetchListing()
            }
            self.reconciliation = reconciliation
            // As Runner.runLocked: earlier nights' rows first, then the listing, then fresh budgets.
            let renewed = try CarryOver.renew(db, now: wall, reconcile: options.reconcile)
            try reconciliation.afterRescue(db, runID: runID, recovered: recovered, renewed: renewed)
            try CarryOver.freshBudgets(db)
            log("process \(generation) starts: run \(runID), \(recovered) row(s) recovered")
            attemptsAtStart = try attemptCounts(db)
        } catch let error as KeyAssignError {
            // The run refuses to start, as `keyassign run` exits with this status (a listing that
            // fails verification for a wrong clock: 78). Not a violation: the rows must still be true.
            log("process \(generation) exits \(error.status.rawValue) before sending: \(error.message)")
            reconciliation = nil
            work = nil
            database = nil
            return .finished
        } catch {
            violate(.stuck, "the process cannot start: \(error)")
            return .finished
        }
        machine = RunStateMachine(
            options: options, limiter: RunStateMachine.standardLimiter(options, now: now),
            signingKeys: keyRing.signingKeys)
        handedOver = []

        while true {
            actions += 1
            if actions > 200_000 { return crash("the action limit") }
            if mayCrash && random.chance(faults.crash) { return crash("kill -9") }
            if random.chance(faults.clockJump) {
                let jump = random.uniform(-faults.clockJumpSize...faults.clockJumpSize)
                wallOffset += jump
                log(String(format: "the wall clock jumps %+.1f s", jump))
            }
            if random.chance(faults.signal) && machine.signalled(SIGTERM) { log("SIGTERM") }
            let action = machine.next(now: now)
            do {
                switch action {
                case .stop:
                    log("stop")
                    return try finishProcess()
                case .wait(let until):
                    if !advance(until: until) { return finishStuck() }
                case .record(let attempts):
                    log("record \(attempts.count) held attempt(s)")
                    handedOver += attempts
                case .flush:
                    try commit()
                    machine.flushed()
                case .findNextDue:
                    let due = try work?.nextRetryDue()
                    machine.nextDue(due, wallNow: wall, now: now)
                case .claim(let limit):
                    let claimed = try work?.claim(runID: runID, limit: limit, now: wall) ?? []
                    log("claim \(limit): \(claimed.map { rows[Int($0.id) - 1].key })")
                    machine.claimed(claimed.count, now: now)
                    for row in claimed {
                        // Between the claim's commit and the send: the crash the rescue exists for.
                        if mayCrash && random.chance(faults.crash / 4) { return crash("kill -9 after the claim") }
                        send(row)
                    }
                }
            } catch {
                violate(.stuck, "a database call failed: \(error)")
                return crash("database failure")
            }
        }
    }

    private func crash(_ why: String) -> ProcessEnd {
        log("CRASH (\(why)): \(handedOver.count) result(s) not committed are lost, \(machine.inFlight) in flight")
        checkRate()
        handedOver = []
        reconciliation = nil
        work = nil
        database = nil
        return .crashed
    }

    private func finishStuck() -> ProcessEnd {
        violate(.stuck, "the machine waits for an event while none can come (\(machine.inFlight) in flight)")
        _ = crash("stuck")
        return .finished
    }

    private func finishProcess() throws -> ProcessEnd {
        // The runner's drain: wait for what is in flight (--timeout, + 5 s unless signalled),
        // then cancel the rest, which is recorded as may-have-reached-the-server.
        let deadline = now + options.timeout + (machine.stops.signal == nil ? 5 : 0)
        while machine.inFlight > 0, let next = queue.first, next.time <= deadline {
            pop()
        }
        if machine.inFlight > 0 {
            now = max(now, deadline)
            for index in requests.indices where requests[index].generation == generation && !requests[index].done {
                _ = deliver(index, .maybeSent("cancelled at the end of the run"))
            }
        }
        let (records, _) = machine.finalRecords()
        handedOver += records
        try commit()
        if let db = database, let kind = machine.verificationStop {
            _ = try CarryOver.parkMaybeDelivered(
                db, runID: runID, reason: "sent while replies failed verification (\(kind))")
        }
        if let db = database, machine.reconcilesAtEnd {
            try reconciliation?.atEnd(db, runID: runID)
        }
        if let db = database {
            let close = try db.prepare("UPDATE runs SET ended_at = ?1 WHERE id = ?2")
            try close.bind(1, Timestamps.iso8601(wall))
            try close.bind(2, runID)
            try close.step()
            try checkAttempts(db)
        }
        checkRate()
        log("process \(generation) ends: \(machine.stops.exitStatus(unfinished: false).status)")
        reconciliation = nil
        work = nil
        database = nil
        return .finished
    }

    private func commit() throws {
        guard !handedOver.isEmpty, let work else { return }
        try work.record(handedOver, runID: runID)
        for attempt in handedOver where attempt.classification.state == .assigned {
            committedAssigned.insert(attempt.row.id)
        }
        handedOver = []
    }

    // MARK: the network

    private func schedule(_ event: Event, at time: Double) {
        sequence += 1
        let item = Scheduled(time: time, sequence: sequence, event: event)
        // A sorted array: scenarios hold tens of events, not thousands.
        let index = queue.firstIndex { ($0.time, $0.sequence) > (item.time, item.sequence) } ?? queue.count
        queue.insert(item, at: index)
    }

    /// Runs events until one wakes the dispatcher or `until` comes. False when the machine
    /// waits for an event and none is left to come.
    private func advance(until: Double?) -> Bool {
        while true {
            guard let next = queue.first else {
                guard let until else { return false }
                now = max(now, until)
                return true
            }
            if let until, next.time > until {
                now = max(now, until)
                return true
            }
            if pop() { return true }
        }
    }

    /// Runs the next event; true when it wakes the dispatcher.
    @discardableResult
    private func pop() -> Bool {
        let next = queue.removeFirst()
        now = max(now, next.time)
        switch next.event {
        case .arrive(let index):
            arrive(index)
            return false
        case .reply(let index, let result):
            let request = requests[index]
            guard request.generation == generation, !request.done else { return false }
            return deliver(index, result)
        case .timeout(let index):
            let request = requests[index]
            guard request.generation == generation, !request.done else { return false }
            return deliver(index, .maybeSent("Operation timed out after \(Int(options.timeout * 1000)) milliseconds"))
        }
    }

    private func oneWay() -> Double { faults.delay + random.unit() * faults.jitter }

    private func send(_ row: ClaimedRow) {
        let key = row.request.licenseKey
        if committedAssigned.contains(row.id) {
            violate(.resentAfterAssigned, "\(key) sent again after its verified 800 was committed")
        }
        if rescued.contains(row.id), listingObtainableAtStart, let holder = server.holders[key],
            holder.at < processStart, server.holdsForBuyer(key, email: row.request.email)
        {
            violate(
                .resentBeforeReconcile,
                "\(key), left in flight by a dead run, sent again although the server held it for our buyer since \(String(format: "%.3f", holder.at - began)) s and its listing was available"
            )
        }
        for pause in pauses where now > pause.from + 1e-9 && now < pause.until - 1e-6 {
            violate(
                .sentDuringPause,
                "\(key) sent \(String(format: "%.3f", pause.until - now)) s before the end of a pause the server asked for"
            )
        }
        sends.append(now)
        let index = requests.count
        requests.append(Request(generation: generation, row: row, sentWall: wall, sentMono: now))
        log("send \(key) (attempt \(row.attempts)\(row.maybeDelivered ? ", maybe delivered" : ""))")
        if let partition = partitions.firstIndex(where: { now >= $0.from && now < $0.until }) {
            // Every other partition refuses connections (nothing leaves); the others swallow packets.
            if partition % 2 == 0 {
                schedule(
                    .reply(index, .notSent("Failed to connect to 127.0.0.1 port 1: Connection refused")),
                    at: now + 0.001)
                return
            }
        } else if !random.chance(faults.lossRequest) {
            // A request reaches the server before its attempt's start + --timeout (the race
            // rule's bound: transfer sockets close with the process, so nothing arrives later).
            schedule(.arrive(index), at: now + min(oneWay(), options.timeout * 0.95))
        }
        schedule(.timeout(index), at: now + options.timeout)
    }

    private func arrive(_ index: Int) {
        let request = requests[index]
        if partitioned(now) { return }
        let handling = server.assign(request.row.request, now: now, faults: faults, random: &random)
        let result: TransportResult
        switch handling {
        case .refused(let reply):
            result = reply
        case .acted(let code, let reply):
            requests[index].acted = true
            log("server: \(request.row.request.licenseKey) → \(code)")
            result = reply
        }
        if random.chance(faults.lossReply) { return }
        var delay = oneWay()
        if random.chance(faults.lateReply) { delay += options.timeout }
        if partitioned(now + delay) { return }
        schedule(.reply(index, result), at: now + delay)
    }

    /// The client gets a request's result: judged as `Runner.complete` does, handed to the
    /// machine, its attempts to the recorder. True when it wakes the dispatcher.
    private func deliver(_ index: Int, _ result: TransportResult) -> Bool {
        requests[index].done = true
        let request = requests[index]
        let reply = RowReply.judge(
            request.row, result: result, verifier: verifier, options: options,
            redaction: redaction, startedWall: request.sentWall, startedMono: request.sentMono,
            endedWall: wall, endedMono: now, jitter: &random)
        let classification = reply.attempt.classification
        let key = request.row.request.licenseKey
        log(
            "reply \(key): \(classification.outcome.rawValue) → \(classification.state.rawValue)\(reply.attempt.httpStatus.map { " (HTTP \($0))" } ?? " (\(classification.error ?? ""))")"
        )
        if request.acted && !classification.countsAttempt {
            violate(
                .refundedButProcessed,
                "\(key): the server acted on attempt \(request.row.attempts), recorded \(classification.outcome.rawValue), refunded"
            )
        }
        if request.acted && !reply.trusted && !classification.maybeDelivered {
            violate(
                .deliveredNotMarked,
                "\(key): the server acted on attempt \(request.row.attempts), no verified answer came back (\(classification.outcome.rawValue)), and the row is not marked maybe-delivered"
            )
        }
        let effects = machine.replied(reply)
        if classification.rateLimited {
            checkPause(reply)
        } else if reply.attempt.httpStatus != nil, reply.sentAt >= wavePauseStartedAt {
            waves = 0
        }
        handedOver += effects.record
        // The completer commits in the background, at times the simulation draws.
        if random.chance(faults.flush) { try? commit() }
        return effects.wakeDispatcher
    }

    /// The documented pause: as long as Retry-After says, else 1, 2, 4 … 60 s by waves of
    /// 429s (the 429s of requests sent before the pause began are one wave).
    private func checkPause(_ reply: RowReply) {
        if reply.sentAt >= wavePauseStartedAt {
            waves += 1
            wavePauseStartedAt = reply.receivedAt
        }
        let end = machine.limiter.pauseEnd
        if let asked = reply.retryAfter {
            pauses.append((reply.receivedAt, reply.receivedAt + asked))
        } else {
            let allowed = min(60, pow(2, Double(max(waves, 1) - 1)))
            if end > reply.receivedAt + allowed + 1e-6 {
                violate(
                    .pauseNotPerWave,
                    String(
                        format:
                            "a pause of %.1f s after %d wave(s) of 429s without Retry-After (the rule allows %.0f s)",
                        end - reply.receivedAt, waves, allowed))
            }
        }
    }

    private func fetchListing() -> Result<Reconciler.Fetched, Reconciler.Unavailable> {
        guard faults.listingAvailable else { return .failure(.notFound) }
        if partitioned(now) { return .failure(.failed("Failed to connect to 127.0.0.1 port 1: Connection refused")) }
        let body = server.listing(now: now, omit: faults.listingOmits, random: &random)
        log("listing fetched")
        return Reconciler.verify(
            OwnedBytes(copying: body), verifier: listingVerifier, maxClockSkew: options.maxClockSkew,
            apiKey: options.apiKey, fetchedAt: wall, receivedAt: wall, clock: { [wall] in wall })
    }

    // MARK: invariants

    private func checkRate() {
        guard options.rate > 0 else { return }
        let capacity = Double(options.burst >= 2 ? options.burst - 1 : 1)
        for i in sends.indices {
            for j in i..<sends.count {
                let allowed = capacity + options.rate * (sends[j] - sends[i])
                if Double(j - i + 1) > allowed + 1e-6 {
                    violate(
                        .rateExceeded,
                        String(
                            format: "%d requests in %.4f s: the most --rate %.2f --burst %d allows is %.2f", j - i + 1,
                            sends[j] - sends[i], options.rate, options.burst, allowed))
                    return
                }
            }
        }
    }

    private func checkAttempts(_ db: Database) throws {
        let counts = try attemptCounts(db)
        let statement = try db.prepare(
            """
            SELECT work_id, count(*) FROM attempts WHERE run_id = ?1
                AND outcome NOT IN ('rate_limited', 'not_sent', 'auth_stop', 'config_stop', 'interrupted')
            GROUP BY work_id
            """)
        try statement.bind(1, runID)
        var counted: [Int64: Int] = [:]
        while try statement.step() { counted[statement.int(0)] = Int(statement.int(1)) }
        for (id, attempts) in counts {
            let delta = attempts - (attemptsAtStart[id] ?? 0)
            if delta != (counted[id] ?? 0) {
                violate(
                    .attemptsMiscounted,
                    "\(rows[Int(id) - 1].key): work.attempts moved by \(delta) in run \(runID), which recorded \(counted[id] ?? 0) counting attempt(s)"
                )
            }
        }
    }

    private func checkNight(clean: Bool) {
        guard let db = try? Database(path: databasePath) else {
            violate(.rowLost, "the database cannot be opened")
            return
        }
        do {
            let statement = try db.prepare("SELECT id, license_key, email, state FROM work ORDER BY id")
            var seen = 0
            while try statement.step() {
                seen += 1
                let key = statement.string(1) ?? ""
                let email = statement.string(2)
                let state = WorkState(rawValue: statement.string(3) ?? "")
                let ours = server.holdsForBuyer(key, email: email)
                switch state {
                case .inFlight?:
                    violate(.rowLost, "\(key) left in_flight by a run that ended")
                case .rejected? where ours:
                    violate(.assignedReadsRejected, "\(key) reads rejected; the server holds it for our buyer")
                case .failed? where ours && rules.maybeDeliveredNeverFailed:
                    violate(.assignedReadsFailed, "\(key) reads failed; the server holds it for our buyer")
                case .assigned? where clean && !ours:
                    violate(
                        .falseState,
                        "\(key) reads assigned; the server \(server.holders[key].map { "holds it for \($0.email ?? "?")" } ?? "does not hold it")"
                    )
                case nil:
                    violate(.rowLost, "\(key) has an unknown state")
                default:
                    break
                }
            }
            if seen != rows.count { violate(.rowLost, "\(seen) rows in work, \(rows.count) imported") }
        } catch {
            violate(.rowLost, "the work table cannot be read: \(error)")
        }
    }

    private func ids(_ db: Database, _ sql: String) throws -> [Int64] {
        let statement = try db.prepare(sql)
        var out: [Int64] = []
        while try statement.step() { out.append(statement.int(0)) }
        return out
    }

    private func attemptCounts(_ db: Database) throws -> [Int64: Int] {
        let statement = try db.prepare("SELECT id, attempts FROM work")
        var out: [Int64: Int] = [:]
        while try statement.step() { out[statement.int(0)] = Int(statement.int(1)) }
        return out
    }
}
