import Synchronization

/// The run's one SQLite connection, with its queue statements (`WorkQueue`), shared by the
/// dispatcher and the completer behind a mutex. One connection is enough: both hold it for a
/// short transaction (a claim of ≤ 64 rows, a batch of results). Result commits
/// (`synchronous = NORMAL`) do not wait for the disk; a claim waits for one fdatasync of the
/// WAL (see `WorkQueue.claim`).
///
/// The mutex owns the queue: nothing reaches the connection, or a statement prepared on it,
/// except through `with`, and what `with` returns must be free of them (`sending`), which the
/// compiler checks.
final class SharedQueue: Sendable {
    private let queue: Mutex<WorkQueue>

    init(_ database: sending Database) {
        queue = Mutex(WorkQueue(database))
    }

    func with<T, E: Error>(_ body: (WorkQueue) throws(E) -> sending T) throws(E) -> sending T {
        try queue.withLock { (queue: inout sending WorkQueue) throws(E) -> sending T in try body(queue) }
    }
}
