/// The queue's statements on `work` and the `attempts` they write, in one place beside the
/// schema (as River's driver keeps its job SQL): recover what a dead run left in flight,
/// claim due rows, record results, and the counts a run reports. `Runner/` only decides when
/// to call them. Two other writers of `work` keep their statements beside their rules:
/// `Requeue` (`keyassign retry`) and `Reconciler.apply` (rows settled from the server's key
/// listing, by `reconcile`, `run` and `sync`).
///
/// One per connection, holding the statements a run executes again and again prepared; not
/// thread-safe (a run shares it behind `SharedQueue`'s mutex).
package final class WorkQueue {
    package let database: Database

    private var claimStatement: Statement?
    private var nextDueStatement: Statement?
    private var updateRowStatement: Statement?
    private var insertAttemptStatement: Statement?
    private var updateRunStatement: Statement?
    private lazy var signedReplies = SignedReplyStore(database)

    package init(_ database: Database) {
        self.database = database
    }

    // MARK: the statements

    /// Rows that still have work. The `work_due` index is partial (`WHERE state IN ('pending',
    /// 'in_flight', 'retry')`), and SQLite uses a partial index only when the query repeats that
    /// exact term: `state = 'pending'` alone does not count as implying it, and the claim became
    /// a full table scan (measured: the dispatcher thread at 100% CPU, one scan of `work` per
    /// claim). So every statement on due rows starts with it.
    private static let dueRows = "state IN ('pending', 'in_flight', 'retry')"

    /// Rows a dead run left in flight, once rescued (`retry` with `maybe_delivered = 1`), in the
    /// index's terms: what reconciliation checks against the key listing before any is resent.
    static let rescuedRetries = "\(dueRows) AND state = 'retry' AND maybe_delivered = 1"

    /// ?1 run id, ?2 now (text), ?3 now (Unix seconds), ?4 how many. Due retries go first, then
    /// pending rows in the index's order (`next_attempt_at`, then rowid: import order for rows
    /// never tried). No ORDER BY promises it, and nothing needs it: every due row is sent in the
    /// end, and a sort would cost a temporary B-tree per claim. Both halves come from the
    /// `work_due` index, so a claim costs the
    /// same with a million rows queued as with ten. Its plan is checked in `RunnerQueueTests`.
    static let claimSQL = """
        UPDATE work SET state = 'in_flight', run_id = ?1, in_flight_since = ?2, updated_at = ?2,
            attempts = attempts + 1
        WHERE id IN (
            SELECT id FROM (SELECT id FROM work WHERE \(dueRows) AND state = 'retry' AND next_attempt_at <= ?3
                            ORDER BY next_attempt_at LIMIT ?4)
            UNION ALL
            SELECT id FROM (SELECT id FROM work WHERE \(dueRows) AND state = 'pending' LIMIT ?4)
            LIMIT ?4)
        RETURNING id, license_key, owner_name, email, idempotency_token, attempts, maybe_delivered
        """

    static let nextDueSQL = "SELECT min(next_attempt_at) FROM work WHERE \(dueRows) AND state = 'retry'"

    static let inFlightSQL =
        "SELECT id, run_id, attempts, in_flight_since FROM work WHERE \(dueRows) AND state = 'in_flight'"

    private static let insertInterruptedSQL = """
        INSERT INTO attempts (work_id, run_id, attempt, started_at, ended_at, outcome, error)
        VALUES (?1, ?2, ?3, ?4, ?5, '\(AttemptOutcome.interrupted.rawValue)', ?6)
        """

    static let rescueSQL = """
        UPDATE work SET state = 'retry', next_attempt_at = ?1, maybe_delivered = 1,
            last_error = 'interrupted: a run died while this request was in flight',
            run_id = NULL, in_flight_since = NULL, updated_at = ?2
        WHERE \(dueRows) AND state = 'in_flight'
        """

    static let toSendSQL = "SELECT count(*) FROM work WHERE \(dueRows) AND state <> 'in_flight'"

    private static let updateRowSQL = """
        UPDATE work SET state = ?1, attempts = ?2, maybe_delivered = ?3, next_attempt_at = ?4,
            last_code = coalesce(?5, last_code), last_http_status = ?6, last_error = ?7, updated_at = ?8,
            run_id = NULL, in_flight_since = NULL
        WHERE id = ?9
        """

    private static let insertAttemptSQL = """
        INSERT INTO attempts (work_id, run_id, attempt, started_at, ended_at, latency_ms, http_status,
                              code, outcome, verdict, error, reply, signing_key_file, signing_key_sha256,
                              signed_reply_id)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
        """

    private static let updateRunSQL = "UPDATE runs SET rows_done = rows_done + ?1 WHERE id = ?2"

    /// Served by the index `attempts_by_run` (migration 2).
    static let statesOfRowsTouchedByRunSQL = """
        SELECT state, count(*) FROM work WHERE id IN (SELECT work_id FROM attempts WHERE run_id = ?1) GROUP BY state
        """

    static let queuedByStateSQL = "SELECT state, count(*) FROM work WHERE \(dueRows) GROUP BY state"

    // MARK: rescue

    /// Recovers rows a dead run left `in_flight`. Their request may have reached the server, so
    /// they become `retry` (due now) with `maybe_delivered = 1`: a later 801 for them is
    /// `uncertain`, never a plain rejection. Each gets an `interrupted` attempt naming the run
    /// that died. Call it only while holding the `DatabaseLock`, so that no live run owns those
    /// rows. Returns how many rows were recovered.
    package func rescue(runID: Int64, now: Double) throws -> Int {
        let db = database
        return try db.transaction {
            let nowText = Timestamps.iso8601(now)
            let select = try db.prepare(Self.inFlightSQL)
            let insert = try db.prepare(Self.insertInterruptedSQL)
            var count = 0
            while try select.step() {
                let deadRun = select.isNull(1) ? nil : select.int(1)
                let message =
                    deadRun.map { "run \($0) died while this request was in flight" }
                    ?? "a run died while this request was in flight"
                try insert.bind(1, select.int(0))
                try insert.bind(2, deadRun ?? runID)
                try insert.bind(3, select.int(2))
                try insert.bind(4, select.string(3) ?? nowText)
                try insert.bind(5, nowText)
                try insert.bind(6, message)
                try insert.step()
                insert.reset()
                count += 1
            }
            if count > 0 {
                let update = try db.prepare(Self.rescueSQL)
                try update.bind(1, now)
                try update.bind(2, nowText)
                try update.step()
            }
            return count
        }
    }

    /// Rows waiting to be sent, now or later (`pending` and `retry`).
    package func rowsToSend() throws -> Int {
        Int(try database.scalarInt(Self.toSendSQL) ?? 0)
    }

    // MARK: claim

    /// Marks up to `limit` due rows `in_flight` for `runID`, counting the attempt, in one
    /// committed transaction, right before their requests go out: a crash between the commit
    /// and the send leaves them for `rescue`.
    ///
    /// The claim is the one commit that must survive a power loss: under the connection's
    /// `synchronous = NORMAL` a WAL commit reaches the disk only at the next checkpoint, so
    /// after an OS crash the rows would be back to `pending` although their requests went out,
    /// and a real assignment would come back as an 801 and be recorded `rejected`. With FULL
    /// the commit returns only after the WAL is synced (fdatasync), before any row is sent.
    /// Results stay NORMAL: one lost to a power loss leaves its row `in_flight`, which the
    /// next run recovers as possibly delivered. Cost: docs/benchmarks.md ("Durable claims").
    package func claim(runID: Int64, limit: Int, now: Double) throws -> [ClaimedRow] {
        if limit <= 0 { return [] }
        let db = database
        let claim = try database.prepared(&claimStatement, Self.claimSQL)
        // Around the transaction (a pragma cannot change inside one), and executed afresh each
        // time: SQLite applies `synchronous` when the pragma is compiled, so a statement
        // prepared once and stepped again would not set it.
        try db.execute("PRAGMA synchronous = FULL")
        defer { try? db.execute("PRAGMA synchronous = NORMAL") }
        return try db.transaction {
            defer { claim.reset() }
            try claim.bind(1, runID)
            try claim.bind(2, Timestamps.iso8601(now))
            try claim.bind(3, now)
            try claim.bind(4, Int64(limit))
            var rows: [ClaimedRow] = []
            rows.reserveCapacity(limit)
            while try claim.step() {
                let request = AssignRequest(
                    licenseKey: claim.string(1) ?? "", ownerName: claim.string(2),
                    email: claim.string(3), idempotencyToken: claim.string(4) ?? "")
                rows.append(
                    ClaimedRow(
                        id: claim.int(0), request: request, attempts: Int(claim.int(5)),
                        maybeDelivered: claim.int(6) != 0, claimedAt: now))
            }
            return rows
        }
    }

    /// When the earliest scheduled retry is due (Unix seconds), if any.
    package func nextRetryDue() throws -> Double? {
        let nextDue = try database.prepared(&nextDueStatement, Self.nextDueSQL)
        defer { nextDue.reset() }
        guard try nextDue.step(), !nextDue.isNull(0) else { return nil }
        return nextDue.double(0)
    }

    // MARK: complete

    /// Records a batch of results in one transaction: each row's new state, one `attempts` row
    /// per result, and the run's `rows_done`. A crash loses only this batch, whose rows are
    /// still `in_flight` and so are recovered by the next run.
    package func record(_ batch: [CompletedAttempt], runID: Int64) throws {
        if batch.isEmpty { return }
        let updateWork = try database.prepared(&updateRowStatement, Self.updateRowSQL)
        let insertAttempt = try database.prepared(&insertAttemptStatement, Self.insertAttemptSQL)
        let updateRun = try database.prepared(&updateRunStatement, Self.updateRunSQL)
        do {
            try recordInTransaction(batch, runID: runID, updateWork, insertAttempt, updateRun)
        } catch {
            // Ids it wrote in the rolled-back transaction are gone.
            signedReplies.forget()
            throw error
        }
    }

    private func recordInTransaction(
        _ batch: [CompletedAttempt], runID: Int64, _ updateWork: Statement, _ insertAttempt: Statement,
        _ updateRun: Statement
    ) throws {
        try database.transaction {
            var done: Int64 = 0
            for item in batch {
                let c = item.classification
                let attempts = c.countsAttempt ? item.row.attempts : max(0, item.row.attempts - 1)
                let endedText = Timestamps.iso8601(item.endedAt)
                try updateWork.bind(1, c.state.rawValue)
                try updateWork.bind(2, Int64(attempts))
                try updateWork.bind(3, Int64(c.maybeDelivered ? 1 : 0))
                try updateWork.bind(4, item.nextAttemptAt)
                try updateWork.bind(5, c.code)
                try updateWork.bind(6, item.httpStatus)
                try updateWork.bind(7, c.error)
                try updateWork.bind(8, endedText)
                try updateWork.bind(9, item.row.id)
                try updateWork.step()
                updateWork.reset()

                try insertAttempt.bind(1, item.row.id)
                try insertAttempt.bind(2, runID)
                try insertAttempt.bind(3, Int64(item.row.attempts))
                try insertAttempt.bind(4, Timestamps.iso8601(item.startedAt))
                try insertAttempt.bind(5, endedText)
                try insertAttempt.bind(6, item.latencyMS)
                try insertAttempt.bind(7, item.httpStatus)
                try insertAttempt.bind(8, c.code)
                try insertAttempt.bind(9, c.outcome.rawValue)
                try insertAttempt.bind(10, c.verdictText)
                try insertAttempt.bind(11, c.error)
                // A trusted reply goes compact, with its key, into signed_replies (migration 8).
                if let signed = item.signedReply, let key = item.signingKey {
                    try insertAttempt.bindBlob(12, nil)
                    try insertAttempt.bind(13, nil as String?)
                    try insertAttempt.bind(14, nil as String?)
                    try insertAttempt.bind(15, try signedReplies.id(for: signed, verifiedBy: key))
                } else {
                    try insertAttempt.bindBlob(12, item.reply)
                    try insertAttempt.bind(13, item.signingKey?.file)
                    try insertAttempt.bind(14, item.signingKey?.sha256)
                    try insertAttempt.bind(15, nil as Int64?)
                }
                try insertAttempt.step()
                insertAttempt.reset()
                if WorkState.finalStates.contains(c.state) { done += 1 }
            }
            try updateRun.bind(1, done)
            try updateRun.bind(2, runID)
            try updateRun.step()
            updateRun.reset()
        }
    }

    // MARK: counts

    /// The states the rows that `runID` made an attempt on are in now.
    func statesOfRowsTouched(byRun runID: Int64) throws -> [WorkState: Int] {
        let statement = try database.prepare(Self.statesOfRowsTouchedByRunSQL)
        try statement.bind(1, runID)
        return try countsByState(statement)
    }

    /// The rows that still have work (`pending`, `in_flight`, `retry`), whole table.
    func queuedRowsByState() throws -> [WorkState: Int] {
        try countsByState(database.prepare(Self.queuedByStateSQL))
    }

    private func countsByState(_ statement: Statement) throws -> [WorkState: Int] {
        var counts: [WorkState: Int] = [:]
        while try statement.step() {
            // The schema's CHECK constraint admits no other state.
            guard let state = WorkState(rawValue: statement.string(0) ?? "") else { continue }
            counts[state, default: 0] = Int(statement.int(1))
        }
        return counts
    }
}
