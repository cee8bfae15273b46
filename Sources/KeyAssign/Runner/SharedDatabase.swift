import Foundation

/// The run's one SQLite connection, shared by the claimer and the completer behind a lock.
/// One connection is enough: both hold it for a short transaction (a claim of ≤ 64 rows, a
/// batch of results). Result commits (`synchronous = NORMAL`) do not wait for the disk; a
/// claim waits for one fdatasync of the WAL (see `Claimer.claim`).
final class SharedDatabase: @unchecked Sendable {
    private let database: Database
    private let lock = NSLock()

    init(_ database: Database) {
        self.database = database
    }

    var path: String { database.path }

    func with<T>(_ body: (Database) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(database)
    }
}
