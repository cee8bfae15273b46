import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One run per database: the `run_lock` row names the process that holds it. Taking it and
/// creating the run's `runs` row happen in one `BEGIN IMMEDIATE` transaction, so two runs
/// starting at the same instant cannot both win.
enum RunLock {
    struct Holder {
        var pid: Int32
        var host: String
        var startedAt: String
        var runID: Int64?
    }

    static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "unknown" : name
    }

    /// True when `pid` names a live process on this host (EPERM: alive, owned by someone else).
    static func isAlive(_ pid: Int32) -> Bool {
        if pid <= 0 { return false }
        if kill(pid, 0) == 0 { return true }
        return errno != ESRCH
    }

    /// Takes the lock and opens a run; returns the new run's id.
    static func acquire(_ db: Database, server: String, logger: Logger) throws -> Int64 {
        let host = hostName
        let pid = getpid()
        let now = Timestamps.nowISO8601()
        return try db.transaction {
            if let holder = try holder(db) {
                if let refusal = refusal(holder, host: host, path: db.path) { throw refusal }
                let runText = holder.runID.map { "run \($0)" } ?? "a run"
                logger.warning("taking over the lock of \(runText) (pid \(holder.pid) on \(holder.host), started \(holder.startedAt)): that process is gone")
                if let dead = holder.runID {
                    let close = try db.prepare("UPDATE runs SET ended_at = coalesce(ended_at, ?1), summary = coalesce(summary, '{\"note\":\"process died; lock taken over\"}') WHERE id = ?2")
                    try close.bind(1, now)
                    try close.bind(2, dead)
                    try close.step()
                }
            }
            let insertRun = try db.prepare("INSERT INTO runs (started_at, pid, host, server) VALUES (?1, ?2, ?3, ?4)")
            try insertRun.bind(1, now)
            try insertRun.bind(2, Int64(pid))
            try insertRun.bind(3, host)
            try insertRun.bind(4, server)
            try insertRun.step()
            let runID = db.lastInsertRowID
            let lock = try db.prepare("INSERT OR REPLACE INTO run_lock (id, pid, host, started_at, run_id) VALUES (1, ?1, ?2, ?3, ?4)")
            try lock.bind(1, Int64(pid))
            try lock.bind(2, host)
            try lock.bind(3, now)
            try lock.bind(4, runID)
            try lock.step()
            return runID
        }
    }

    static func holder(_ db: Database) throws -> Holder? {
        let select = try db.prepare("SELECT pid, host, started_at, run_id FROM run_lock WHERE id = 1")
        guard try select.step() else { return nil }
        return Holder(pid: Int32(truncatingIfNeeded: select.int(0)), host: select.string(1) ?? "?",
                      startedAt: select.string(2) ?? "?", runID: select.isNull(3) ? nil : select.int(3))
    }

    /// The error for a lock held by a live run, or nil when the holder is a dead process on
    /// this host (whose lock may be taken over).
    static func refusal(_ holder: Holder, host: String, path: String) -> KeyAssignError? {
        let runText = holder.runID.map { "run \($0)" } ?? "a run"
        if holder.host != host {
            return KeyAssignError(.locked, "database \(path) is locked by \(runText): pid \(holder.pid) on host \(holder.host), started \(holder.startedAt). keyassign cannot check a process on another host; if that run is gone, remove the lock with: sqlite3 \(path) 'DELETE FROM run_lock'")
        }
        if isAlive(holder.pid) {
            return KeyAssignError(.locked, "database \(path) is locked by \(runText): pid \(holder.pid) on host \(holder.host), started \(holder.startedAt); one run at a time")
        }
        return nil
    }

    /// Fails with status 75 when a live run holds the database (for `sync`, before it imports).
    static func checkFree(_ db: Database) throws {
        if let holder = try holder(db), let refusal = refusal(holder, host: hostName, path: db.path) { throw refusal }
    }

    /// Releases the lock if this run still holds it.
    static func release(_ db: Database, runID: Int64) throws {
        let statement = try db.prepare("DELETE FROM run_lock WHERE id = 1 AND run_id = ?1")
        try statement.bind(1, runID)
        try statement.step()
    }
}
