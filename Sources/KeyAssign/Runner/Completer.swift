import Foundation

/// One finished attempt, ready to be recorded.
struct CompletedAttempt: Sendable {
    var row: ClaimedRow
    var classification: Classification
    var nextAttemptAt: Double?
    var startedAt: Double
    var endedAt: Double
    var latencyMS: Double
    var httpStatus: Int?
    var reply: [UInt8]?
    /// The key that verified the reply, when it was trusted.
    var signingKey: SigningKey?
}

/// Collects results from many threads and commits them in batches: every `interval` seconds,
/// or sooner once `batchSize` results wait. One transaction per batch updates the rows and
/// appends their attempts. A crash loses only the current batch, whose rows are still
/// `in_flight` in the database and so are recovered by the next run.
final class Completer: @unchecked Sendable {
    private let database: SharedDatabase
    private let runID: Int64
    private let interval: Double
    private let batchSize: Int
    private let lock = NSCondition()
    private var waiting: [CompletedAttempt] = []
    private var stopping = false
    private var flusherDone = false
    private var failure: Error?
    private var recorded = 0
    /// The background flusher holds a batch it has not committed yet.
    private var committing = false
    private var updateWork: Statement?
    private var insertAttempt: Statement?
    private var updateRun: Statement?

    init(database: SharedDatabase, runID: Int64, interval: Double = 0.05, batchSize: Int = 512) {
        self.database = database
        self.runID = runID
        self.interval = interval
        self.batchSize = batchSize
    }

    func start() {
        let thread = Thread { [self] in flushLoop() }
        thread.name = "keyassign.completer"
        thread.start()
    }

    func add(_ attempt: CompletedAttempt) {
        lock.lock()
        waiting.append(attempt)
        if waiting.count >= batchSize { lock.signal() }
        lock.unlock()
    }

    /// The first database error met while recording (the run stops on it).
    var error: Error? {
        lock.lock()
        defer { lock.unlock() }
        return failure
    }

    /// Results committed so far.
    var recordedCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return recorded
    }

    /// Commits everything received so far, now, on the calling thread (after a batch the
    /// background flusher is committing). Returns how many it committed itself.
    @discardableResult
    func flushNow() throws -> Int {
        lock.lock()
        while committing { lock.wait() }
        let batch = waiting
        waiting.removeAll(keepingCapacity: true)
        lock.unlock()
        try commit(batch)
        return batch.count
    }

    /// Stops the background flusher after a final flush.
    func finish() throws {
        lock.lock()
        stopping = true
        lock.signal()
        while !flusherDone { lock.wait() }
        lock.unlock()
        try flushNow()
        if let failure = error { throw failure }
    }

    private func flushLoop() {
        lock.lock()
        while !stopping {
            if waiting.count < batchSize {
                _ = lock.wait(until: Date(timeIntervalSinceNow: interval))
            }
            if waiting.isEmpty { continue }
            let batch = waiting
            waiting.removeAll(keepingCapacity: true)
            committing = true
            lock.unlock()
            do {
                try commit(batch)
            } catch {
                lock.lock()
                committing = false
                lock.broadcast()
                if failure == nil { failure = error }
                // Keep the batch so that a final flush can try again; the run stops anyway.
                waiting.insert(contentsOf: batch, at: 0)
                lock.unlock()
                lock.lock()
                break
            }
            lock.lock()
            committing = false
            lock.broadcast()
        }
        flusherDone = true
        lock.broadcast()
        lock.unlock()
    }

    private func commit(_ batch: [CompletedAttempt]) throws {
        if batch.isEmpty { return }
        try database.with { db in
            if updateWork == nil {
                updateWork = try db.prepare("""
                    UPDATE work SET state = ?1, attempts = ?2, maybe_delivered = ?3, next_attempt_at = ?4,
                        last_code = coalesce(?5, last_code), last_http_status = ?6, last_error = ?7, updated_at = ?8,
                        run_id = NULL, in_flight_since = NULL
                    WHERE id = ?9
                    """)
                insertAttempt = try db.prepare("""
                    INSERT INTO attempts (work_id, run_id, attempt, started_at, ended_at, latency_ms, http_status,
                                          code, outcome, verdict, error, reply, signing_key_file, signing_key_sha256)
                    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                    """)
                updateRun = try db.prepare("UPDATE runs SET rows_done = rows_done + ?1 WHERE id = ?2")
            }
            guard let updateWork, let insertAttempt, let updateRun else { return }
            try db.transaction {
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
                    try insertAttempt.bind(9, c.outcome)
                    try insertAttempt.bind(10, c.verdict)
                    try insertAttempt.bind(11, c.error)
                    try insertAttempt.bindBlob(12, item.reply)
                    try insertAttempt.bind(13, item.signingKey?.file)
                    try insertAttempt.bind(14, item.signingKey?.sha256)
                    try insertAttempt.step()
                    insertAttempt.reset()
                    switch c.state {
                    case .assigned, .rejected, .uncertain, .failed: done += 1
                    default: break
                    }
                }
                try updateRun.bind(1, done)
                try updateRun.bind(2, runID)
                try updateRun.step()
                updateRun.reset()
            }
        }
        lock.lock()
        recorded += batch.count
        lock.unlock()
    }
}
