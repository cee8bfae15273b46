/// What a run does with the rows earlier runs left, before it sends anything, and with the
/// rows it leaves when it stops early: the statements behind "a rerun retries what failed for
/// a passing reason" and "maybe delivered is never failed" (docs/states.md). Call them only
/// while holding the `DatabaseLock`.
package enum CarryOver {
    package struct Renewed: Sendable, Equatable {
        /// `failed` rows with a passing reason, back to `retry` (due now): provably never processed.
        var retried = 0
        /// `failed` rows with a passing reason that may have reached the server: `uncertain`, so
        /// that the key listing settles them before anything is sent again.
        var uncertain = 0
    }

    /// `failed` rows whose recorded failure passes (`FailureKind`) come back: to `retry` when no
    /// attempt may have reached the server, else to `uncertain` (with `reconcile`; without it to
    /// `retry`, where a later 801 is `uncertain` again, never `rejected`). Before the listing,
    /// which settles the `uncertain` ones; `freshBudgets` comes after it.
    package static func renew(_ db: Database, now: Double, reconcile: Bool) throws -> Renewed {
        try db.transaction {
            var renewed = Renewed()
            let select = try db.prepare(
                "SELECT id, last_http_status, last_code, maybe_delivered FROM work WHERE state = 'failed'")
            var passing: [(id: Int64, maybeDelivered: Bool)] = []
            while try select.step() {
                let kind = FailureKind(
                    httpStatus: select.isNull(1) ? nil : Int(select.int(1)),
                    code: select.isNull(2) ? nil : Int(select.int(2)))
                if kind == .passing { passing.append((select.int(0), select.int(3) != 0)) }
            }
            if !passing.isEmpty {
                let update = try db.prepare(
                    """
                    UPDATE work SET state = ?1, attempts = 0, next_attempt_at = ?2, updated_at = ?3,
                        last_error = ?4 || coalesce(last_error, 'no reason recorded') || ')'
                    WHERE id = ?5 AND state = 'failed'
                    """)
                let nowText = Timestamps.iso8601(now)
                for row in passing {
                    let settleFirst = row.maybeDelivered && reconcile
                    try update.bind(1, settleFirst ? WorkState.uncertain.rawValue : WorkState.retry.rawValue)
                    let due: Double? = settleFirst ? nil : now
                    try update.bind(2, due)
                    try update.bind(3, nowText)
                    try update.bind(
                        4,
                        settleFirst
                            ? "failed in an earlier run for a passing reason, and may have reached the server: the key listing settles it before it is sent again ("
                            : "failed in an earlier run for a passing reason: sent again with a fresh --max-attempts (")
                    try update.bind(5, row.id)
                    try update.step()
                    update.reset()
                    if settleFirst { renewed.uncertain += 1 } else { renewed.retried += 1 }
                }
            }
            return renewed
        }
    }

    /// `--max-attempts` bounds the attempts of one run, not a row's lifetime: every row this run
    /// may send starts at 0 (the `attempts` table keeps every attempt). After the listing, so
    /// that the `uncertain` rows it sends back to `retry` start at 0 too.
    package static func freshBudgets(_ db: Database) throws {
        // In the `work_due` index's own terms (see `WorkQueue.dueRows`).
        try db.execute(
            "UPDATE work SET attempts = 0 WHERE state IN ('pending', 'in_flight', 'retry') AND state <> 'in_flight' AND attempts <> 0"
        )
    }

    /// Rows still `failed` that this run did not touch: failures of earlier nights that wait
    /// for a person (`keyassign retry`). The summary, `status` and the metrics count them, so
    /// that monitoring sees them on a night that itself went well.
    package static func failedEarlier(_ db: Database, runID: Int64) throws -> Int {
        Int(
            try db.scalarInt(
                """
                SELECT count(*) FROM work WHERE state = 'failed' AND id NOT IN (SELECT work_id FROM attempts WHERE run_id = ?1)
                """, [.int(runID)]) ?? 0)
    }

    /// After a stop because replies failed verification (a wrong --public-key, a wrong clock):
    /// the rows this run sent are maybe delivered (the server may well have assigned them), so
    /// they are `uncertain`, for reconciliation to settle once the key or clock is right.
    package static func parkMaybeDelivered(_ db: Database, runID: Int64, reason: String) throws -> Int {
        try db.transaction {
            let update = try db.prepare(
                """
                UPDATE work SET state = 'uncertain', next_attempt_at = NULL, updated_at = ?1,
                    last_error = ?2 || ' (' || coalesce(last_error, '') || ')'
                WHERE state IN ('pending', 'in_flight', 'retry') AND state = 'retry' AND maybe_delivered = 1
                    AND id IN (SELECT work_id FROM attempts WHERE run_id = ?3)
                """)
            try update.bind(1, Timestamps.nowISO8601())
            try update.bind(2, reason)
            try update.bind(3, runID)
            try update.step()
            return db.changes
        }
    }
}
