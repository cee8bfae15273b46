/// Recovers rows a dead run left `in_flight`. Their request may have reached the server, so
/// they become `retry` (due now) with `maybe_delivered = 1`: a later 801 for them is
/// `uncertain`, never a plain rejection. Runs only while holding the `DatabaseLock`, so no live run
/// owns those rows.
enum Rescuer {
    /// Returns how many rows were recovered.
    static func rescue(_ db: Database, runID: Int64, now: Double) throws -> Int {
        try db.transaction {
            let nowText = Timestamps.iso8601(now)
            let select = try db.prepare("SELECT id, run_id, attempts, in_flight_since FROM work WHERE \(Claimer.dueRows) AND state = 'in_flight'")
            let insert = try db.prepare("""
                INSERT INTO attempts (work_id, run_id, attempt, started_at, ended_at, outcome, error)
                VALUES (?1, ?2, ?3, ?4, ?5, 'interrupted', ?6)
                """)
            var count = 0
            while try select.step() {
                let deadRun = select.isNull(1) ? nil : select.int(1)
                let message = deadRun.map { "run \($0) died while this request was in flight" }
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
                let update = try db.prepare("""
                    UPDATE work SET state = 'retry', next_attempt_at = ?1, maybe_delivered = 1,
                        last_error = 'interrupted: a run died while this request was in flight',
                        run_id = NULL, in_flight_since = NULL, updated_at = ?2
                    WHERE \(Claimer.dueRows) AND state = 'in_flight'
                    """)
                try update.bind(1, now)
                try update.bind(2, nowText)
                try update.step()
            }
            return count
        }
    }
}
