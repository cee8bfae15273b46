import Foundation

/// Collects results from many threads and commits them in batches: `interval` seconds after
/// the first result of a batch arrived, or sooner once `batchSize` results wait. One
/// transaction per batch updates the rows and appends their attempts. A crash loses only the
/// current batch, whose rows are still `in_flight` in the database and so are recovered by the
/// next run.
///
/// Its state is behind an `NSCondition`, not a `Mutex`: the flusher sleeps on it (with nothing
/// waiting, until a result arrives: it does not poll), and `flushNow` waits on it for the
/// flusher's commit. `onFailure` runs once, when a commit fails, so that whoever waits for
/// events (the dispatcher) hears of it at once instead of looking now and then.
final class Completer: @unchecked Sendable {
    private let queue: SharedQueue
    private let runID: Int64
    private let interval: Double
    private let batchSize: Int
    private let onFailure: @Sendable () -> Void
    private let lock = NSCondition()
    private var waiting: [CompletedAttempt] = []
    private var stopping = false
    private var flusherDone = false
    private var failure: Error?
    private var recorded = 0
    /// The background flusher holds a batch it has not committed yet.
    private var committing = false

    init(
        queue: SharedQueue, runID: Int64, interval: Double = 0.05, batchSize: Int = 512,
        onFailure: @escaping @Sendable () -> Void = {}
    ) {
        self.queue = queue
        self.runID = runID
        self.interval = interval
        self.batchSize = batchSize
        self.onFailure = onFailure
    }

    func start() {
        let thread = Thread { [self] in flushLoop() }
        thread.name = "keyassign.completer"
        thread.start()
    }

    func add(_ attempt: CompletedAttempt) {
        lock.lock()
        waiting.append(attempt)
        // The first result starts the batch's clock; a full batch goes at once.
        if waiting.count == 1 || waiting.count >= batchSize { lock.broadcast() }
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
            if waiting.isEmpty {
                // Nothing to commit: sleep until a result (or the end) arrives.
                lock.wait()
                continue
            }
            if waiting.count < batchSize {
                // A batch has begun: give it `interval` to fill, then commit what came.
                let due = Date(timeIntervalSinceNow: interval)
                while !stopping && waiting.count < batchSize && lock.wait(until: due) {}
                if waiting.isEmpty { continue }
            }
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
                onFailure()
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
        try queue.with { try $0.record(batch, runID: runID) }
        lock.lock()
        recorded += batch.count
        lock.unlock()
    }
}
