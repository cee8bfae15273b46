/// Takes due rows for sending: each claim is one committed transaction that marks up to `n`
/// rows `in_flight` (counting the attempt) right before their requests go out, so a crash
/// between the commit and the send leaves them for the `Rescuer`. Due retries go first, then
/// pending rows in import order; both come from the `work_due` index, so a claim costs the
/// same with a million rows queued as with ten.
final class Claimer {
    /// The `work_due` index is partial (`WHERE state IN ('pending', 'in_flight', 'retry')`), and
    /// SQLite uses a partial index only when the query repeats that exact term: `state =
    /// 'pending'` alone does not count as implying it, and the claim became a full table scan
    /// (measured: the dispatcher thread at 100% CPU, one scan of `work` per claim).
    static let dueRows = "state IN ('pending', 'in_flight', 'retry')"

    /// ?1 run id, ?2 now (text), ?3 now (Unix seconds), ?4 how many. Its plan is checked in
    /// `RunnerQueueTests`.
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

    private let claim: Statement
    private let nextDue: Statement
    private let runID: Int64

    init(_ db: Database, runID: Int64) throws {
        self.runID = runID
        claim = try db.prepare(Claimer.claimSQL)
        nextDue = try db.prepare(Claimer.nextDueSQL)
    }

    /// Claims up to `limit` due rows in one transaction (the caller holds the connection).
    ///
    /// The claim is the one commit that must survive a power loss: under the connection's
    /// `synchronous = NORMAL` a WAL commit reaches the disk only at the next checkpoint, so
    /// after an OS crash the rows would be back to `pending` although their requests went out,
    /// and a real assignment would come back as an 801 and be recorded `rejected`. With FULL
    /// the commit returns only after the WAL is synced (fdatasync), before any row is sent.
    /// Results stay NORMAL: one lost to a power loss leaves its row `in_flight`, which the
    /// next run recovers as possibly delivered. Cost: docs/benchmarks.md ("Durable claims").
    func claim(_ db: Database, limit: Int, now: Double) throws -> [ClaimedRow] {
        if limit <= 0 { return [] }
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
                let request = AssignRequest(licenseKey: claim.string(1) ?? "", ownerName: claim.string(2),
                                            email: claim.string(3), idempotencyToken: claim.string(4) ?? "")
                rows.append(ClaimedRow(id: claim.int(0), request: request, attempts: Int(claim.int(5)),
                                       maybeDelivered: claim.int(6) != 0, claimedAt: now))
            }
            return rows
        }
    }

    /// When the earliest scheduled retry is due (Unix seconds), if any.
    func nextRetryDue(_ db: Database) throws -> Double? {
        defer { nextDue.reset() }
        guard try nextDue.step(), !nextDue.isNull(0) else { return nil }
        return nextDue.double(0)
    }
}
