import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The `runs` row of a run: opened once the run holds the `DatabaseLock`, closed with its
/// summary at the end.
package enum RunRecord {
    /// Opens the run's row and returns its id. The caller holds the database lock, so any
    /// earlier run still without an end is a process that died (kill -9, OOM, power loss):
    /// that is known for certain now, not guessed from a pid.
    package static func open(_ db: Database, server: String, logger: Logger) throws -> Int64 {
        let now = Timestamps.nowISO8601()
        return try db.transaction {
            let unfinished = try db.prepare(
                "SELECT id, pid, host, started_at FROM runs WHERE ended_at IS NULL ORDER BY id")
            var dead: [Int64] = []
            while try unfinished.step() {
                dead.append(unfinished.int(0))
                logger.warning(
                    "run \(unfinished.int(0)) (pid \(unfinished.int(1)) on \(unfinished.string(2) ?? "?"), started \(unfinished.string(3) ?? "?")) never finished: its process died"
                )
            }
            if !dead.isEmpty {
                let close = try db.prepare(
                    "UPDATE runs SET ended_at = ?1, summary = coalesce(summary, '{\"note\":\"process died before the end of the run\"}') WHERE ended_at IS NULL"
                )
                try close.bind(1, now)
                try close.step()
            }
            // Left by versions that kept the lock in the database; nothing reads it any more.
            try db.execute("DELETE FROM run_lock")
            let insertRun = try db.prepare("INSERT INTO runs (started_at, pid, host, server) VALUES (?1, ?2, ?3, ?4)")
            try insertRun.bind(1, now)
            try insertRun.bind(2, Int64(getpid()))
            try insertRun.bind(3, DatabaseLock.hostName)
            try insertRun.bind(4, server)
            try insertRun.step()
            return db.lastInsertRowID
        }
    }

    /// Closes the run's row with its end time, exit status and summary (nil when the run failed
    /// before it could make one). Never throws: a run that cannot record its end still ends with
    /// its own status, and the next run closes the row as one whose process died.
    static func close(_ db: Database, runID: Int64, status: ExitStatus, summary: RunSummary?, logger: Logger) {
        close(db, runID: runID, status: status, summaryJSON: summary.map(compact), logger: logger)
    }

    /// `close` for a job whose summary is not a run's (`reconcile`): `summaryJSON` is one JSON
    /// object, stored as it is.
    static func close(_ db: Database, runID: Int64, status: ExitStatus, summaryJSON: String?, logger: Logger) {
        do {
            let statement = try db.prepare(
                "UPDATE runs SET ended_at = ?1, exit_status = ?2, summary = ?3 WHERE id = ?4")
            try statement.bind(1, Timestamps.nowISO8601())
            try statement.bind(2, Int64(status.rawValue))
            try statement.bind(3, summaryJSON)
            try statement.bind(4, runID)
            try statement.step()
        } catch {
            logger.error("could not record the end of run \(runID): \(error)")
        }
    }

    /// `runs.summary`: the summary as one line of JSON.
    private static func compact(_ summary: RunSummary) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(summary)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
