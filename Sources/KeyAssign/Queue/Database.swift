import CSQLite

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A thin wrapper over one SQLite connection (the system libsqlite3).
///
/// The raw C API is used rather than an ORM because the import path binds millions of
/// values straight from the CSV reader's buffers, and a wrapper that copies each one into a
/// Swift value first is what would make it slower than `sqlite3 .import`. A connection is
/// not thread-safe: share one only behind a lock (see `SharedQueue`).
public final class Database {
    let handle: OpaquePointer
    public let path: String

    /// Where the work database lives: `--db`, else `$KEYASSIGN_DB`, else `./keyassign.sqlite`.
    public static func resolvePath(_ flag: String?) -> String {
        if let flag, !flag.isEmpty { return flag }
        if let env = getenv("KEYASSIGN_DB"), let value = String(validatingCString: env), !value.isEmpty {
            return value
        }
        return "keyassign.sqlite"
    }

    /// Opens (and with `create`, creates) the database and brings its schema up to date.
    /// Without `create`, a missing file is an error: reading commands must not leave an
    /// empty database behind a typo. Throws `DatabaseOpenError` when there is no connection,
    /// `DatabaseError` when a setting or a migration fails, `KeyAssignError(.noPermission)`
    /// when its files are not the user's own to trust (`DatabaseFileTrust`).
    public init(path: String, create: Bool = true) throws {
        // The database holds customers' names and emails: a new one is created 0600 (SQLite
        // would use 0644 less the umask; its -wal and -shm files get the database's mode), and
        // one that another user could have planted or can write is refused (exit 77), a
        // dangling symlink included.
        try DatabaseFileTrust.prepare(path, create: create)
        if !create && access(path, F_OK) != 0 {
            throw DatabaseOpenError.missing(path: path)
        }
        var db: OpaquePointer?
        var flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX
        // SQLite resolves a symlink at the path; refused above, and here too for one planted
        // between that check and this open. SQLITE_OPEN_NOFOLLOW refuses a symlink anywhere in
        // the path, so the directories (a /var/lib that is a link, say) are resolved first.
        var openPath = path
        if !DatabaseFileTrust.isSharedAllowed && !DatabaseFileTrust.isInMemory(path) {
            flags |= SQLITE_OPEN_NOFOLLOW
            openPath = DatabaseFileTrust.withDirectoryResolved(path)
        }
        let rc = sqlite3_open_v2(openPath, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            let systemErrno = db.map { sqlite3_system_errno($0) } ?? 0
            if let db { sqlite3_close_v2(db) }
            throw DatabaseOpenError.cannotOpen(
                DatabaseError(code: rc, message: message, path: path, systemErrno: systemErrno))
        }
        self.handle = db
        self.path = path
        sqlite3_extended_result_codes(db, 1)
        do {
            // A reader never waits for long: one writer at a time is the design, the lock
            // table keeps runs apart, and a short wait covers `status` during a run.
            sqlite3_busy_timeout(db, 5_000)
            if try scalarInt("SELECT count(*) FROM sqlite_master") == 0 {
                // A new file: pages freed by `keyassign prune` go back to the file system.
                // Settable only before the first table and before WAL mode writes the header;
                // an older file is converted by its first prune (`EvidenceRetention`, a VACUUM).
                try execute("PRAGMA auto_vacuum = INCREMENTAL")
            }
            try execute("PRAGMA journal_mode = WAL")
            // NORMAL in WAL mode: a commit survives a crash of the process; only a power
            // loss may drop the last commits, and never corrupts the file.
            try execute("PRAGMA synchronous = NORMAL")
            try execute("PRAGMA foreign_keys = ON")
            try execute("PRAGMA cache_size = -16384")
            try Migrations.migrate(self)
        } catch {
            sqlite3_close_v2(db)
            throw error
        }
    }

    deinit {
        sqlite3_close_v2(handle)
    }

    public func execute(_ sql: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(errorMessage)
            throw DatabaseError(
                code: rc, message: message, path: path, systemErrno: sqlite3_system_errno(handle), sql: sql)
        }
    }

    /// Prepares `sql` on first use and keeps it in `slot`: for the statements a job runs for
    /// every row.
    func prepared(_ slot: inout Statement?, _ sql: String) throws -> Statement {
        if let statement = slot { return statement }
        let statement = try prepare(sql)
        slot = statement
        return statement
    }

    public func prepare(_ sql: String) throws -> Statement {
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK, let statement else {
            throw DatabaseError(
                code: rc, message: String(cString: sqlite3_errmsg(handle)), path: path,
                systemErrno: sqlite3_system_errno(handle), sql: sql)
        }
        return Statement(statement, database: self)
    }

    /// How a transaction takes SQLite's locks (https://www.sqlite.org/lang_transaction.html).
    public enum TransactionKind: String, Sendable {
        /// Takes the write lock at `BEGIN`, so that a busy database fails there rather than
        /// half-way through the work. (The only kind keyassign uses.)
        case immediate = "IMMEDIATE"
    }

    /// What to do with a transaction's work once its body returns.
    public enum TransactionCompletion: Sendable {
        case commit
        case rollback
    }

    /// Runs `body` in one transaction and ends it the way `body` says: `.commit` keeps its
    /// work, `.rollback` undoes it (a dry run does everything a real one does, then this). A
    /// thrown error rolls back and is rethrown; of a body's error and a failed ROLLBACK, the
    /// body's is the one thrown, since it says what went wrong first. Not reentrant.
    public func inTransaction(_ kind: TransactionKind = .immediate, _ body: () throws -> TransactionCompletion) throws {
        try execute("BEGIN \(kind.rawValue)")
        var firstError: (any Error)?
        var needsRollback: Bool
        do {
            switch try body() {
            case .commit:
                // A failed COMMIT leaves the transaction open: it is rolled back below.
                try execute("COMMIT")
                needsRollback = false
            case .rollback:
                needsRollback = true
            }
        } catch {
            firstError = error
            needsRollback = true
        }
        if needsRollback {
            do {
                try execute("ROLLBACK")
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        if let firstError { throw firstError }
    }

    /// Runs `body` in one `IMMEDIATE` transaction: committed if it returns, rolled back if it
    /// throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        var result: T?
        try inTransaction {
            result = try body()
            return .commit
        }
        // inTransaction returns only after `body` returned: the result is there.
        return result!
    }

    /// How long a statement waits for another connection's write lock before failing busy.
    public func setBusyTimeout(seconds: Double) {
        sqlite3_busy_timeout(handle, Int32(min(seconds, 86_400) * 1000))
    }

    public var changes: Int { Int(sqlite3_changes(handle)) }
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Runs a query and returns the first column of the first row as an integer.
    public func scalarInt(_ sql: String, _ arguments: [SQLValue] = []) throws -> Int64? {
        let statement = try prepare(sql)
        try statement.bind(arguments)
        guard try statement.step() else { return nil }
        return statement.isNull(0) ? nil : statement.int(0)
    }
}

/// A value to bind, for the queries that are not on a hot path.
public enum SQLValue: Sendable, Equatable {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
    case blob([UInt8])
}

public final class Statement {
    let handle: OpaquePointer
    unowned let database: Database

    init(_ handle: OpaquePointer, database: Database) {
        self.handle = handle
        self.database = database
    }

    deinit {
        sqlite3_finalize(handle)
    }

    private func check(_ rc: Int32) throws {
        if rc != SQLITE_OK { throw error(rc) }
    }

    /// The error for a failed call on this statement, naming its SQL as written (with `?`
    /// placeholders, never the bound values: those are customers' names and emails).
    private func error(_ rc: Int32) -> DatabaseError {
        DatabaseError(
            code: rc, message: String(cString: sqlite3_errmsg(database.handle)), path: database.path,
            systemErrno: sqlite3_system_errno(database.handle),
            sql: sqlite3_sql(handle).map { String(cString: $0) })
    }

    public func bind(_ index: Int32, _ value: String?) throws {
        guard let value else { return try check(sqlite3_bind_null(handle, index)) }
        try check(sqlite3_bind_text(handle, index, value, -1, keyassign_sqlite_transient()))
    }

    public func bind(_ index: Int32, _ value: Int64?) throws {
        guard let value else { return try check(sqlite3_bind_null(handle, index)) }
        try check(sqlite3_bind_int64(handle, index, value))
    }

    public func bind(_ index: Int32, _ value: Int?) throws {
        try bind(index, value.map(Int64.init))
    }

    public func bind(_ index: Int32, _ value: Double?) throws {
        guard let value else { return try check(sqlite3_bind_null(handle, index)) }
        try check(sqlite3_bind_double(handle, index, value))
    }

    /// Binds UTF-8 text straight from a buffer (SQLite copies it), or NULL when `bytes` is nil.
    public func bindText(_ index: Int32, _ bytes: UnsafeRawBufferPointer?) throws {
        guard let bytes, let base = bytes.baseAddress else {
            if bytes != nil {
                return try check(sqlite3_bind_text(handle, index, "", 0, keyassign_sqlite_transient()))
            }
            return try check(sqlite3_bind_null(handle, index))
        }
        try check(
            sqlite3_bind_text(
                handle, index, base.assumingMemoryBound(to: CChar.self),
                Int32(bytes.count), keyassign_sqlite_transient()))
    }

    /// Binds UTF-8 text from a buffer without copying it (SQLITE_STATIC): the caller keeps
    /// the bytes unchanged until the statement is stepped and reset or rebound. For hot
    /// loops only (the importer binds millions of fields from its read buffer).
    public func bindTextNoCopy(_ index: Int32, _ bytes: UnsafeRawBufferPointer?) throws {
        guard let bytes, let base = bytes.baseAddress else { return try bindText(index, bytes) }
        try check(sqlite3_bind_text(handle, index, base.assumingMemoryBound(to: CChar.self), Int32(bytes.count), nil))
    }

    public func bindBlob(_ index: Int32, _ bytes: [UInt8]?) throws {
        guard let bytes else { return try check(sqlite3_bind_null(handle, index)) }
        try bytes.withUnsafeBytes { raw in
            try check(sqlite3_bind_blob(handle, index, raw.baseAddress, Int32(raw.count), keyassign_sqlite_transient()))
        }
    }

    public func bind(_ values: [SQLValue]) throws {
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            switch value {
            case .null: try check(sqlite3_bind_null(handle, index))
            case .int(let v): try bind(index, v)
            case .double(let v): try bind(index, v)
            case .text(let v): try bind(index, v)
            case .blob(let v): try bindBlob(index, v)
            }
        }
    }

    /// Steps once: true when a row is available, false when done.
    @discardableResult
    public func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            throw error(rc)
        }
    }

    /// Resets for the next execution and clears the bindings.
    public func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// Resets for the next execution, keeping the bindings: values that are the same for
    /// every row (an import's id, file and time) are bound once.
    public func resetKeepingBindings() {
        sqlite3_reset(handle)
    }

    public func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    public func int(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    public func double(_ column: Int32) -> Double { sqlite3_column_double(handle, column) }

    public func string(_ column: Int32) -> String? {
        guard let text = sqlite3_column_text(handle, column) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeRawBufferPointer(start: text, count: count), as: UTF8.self)
    }

    /// A text column's bytes without copying them, nil for NULL: valid only until the next
    /// `step`, `reset` or column access of another type. For loops over millions of rows.
    public func text(_ column: Int32) -> UnsafeRawBufferPointer? {
        guard let text = sqlite3_column_text(handle, column) else { return nil }
        return UnsafeRawBufferPointer(start: text, count: Int(sqlite3_column_bytes(handle, column)))
    }

    public func blob(_ column: Int32) -> [UInt8]? {
        if isNull(column) { return nil }
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let bytes = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: count))
    }
}

/// A failed SQLite call. Disk full, read-only and corruption map to exit status 74 with a
/// message that says what to do; anything else is a bug or a damaged file and says so, with
/// the SQL that failed. Thrown as it is up to the command's boundary, which maps it (as any
/// `ExitStatusError`) to its status and message.
public struct DatabaseError: ExitStatusError, CustomStringConvertible, CustomDebugStringConvertible, Sendable {
    public var code: Int32
    public var message: String
    public var path: String
    /// The OS error behind an I/O failure: SQLite reports a full disk or a read-only file
    /// system met while growing the WAL index or opening a file as a plain I/O error.
    public var systemErrno: Int32
    /// The statement that failed, as written: its `?` placeholders, never the values bound to
    /// them (those are customers' names and emails). Nil when the call ran no statement.
    public var sql: String?

    public init(code: Int32, message: String, path: String, systemErrno: Int32 = 0, sql: String? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.systemErrno = systemErrno
        self.sql = sql
    }

    public var primaryCode: Int32 { code & 0xff }

    /// Every database failure is the file system's or the file's: EX_IOERR.
    public var status: ExitStatus { .ioError }

    public var description: String {
        if primaryCode == SQLITE_IOERR || primaryCode == SQLITE_CANTOPEN {
            // SQLite does not keep errno for every path (growing the -shm file, for one), so
            // the file system is asked as well.
            let fileSystem = FileSystemSpace(directoryOf: path)
            if systemErrno == ENOSPC || systemErrno == EDQUOT || fileSystem?.isNearlyFull == true {
                return
                    "database \(path): the disk is full (\(message)); nothing recorded was lost; free space and run again"
            }
            if systemErrno == EROFS || fileSystem?.isReadOnly == true {
                return "database \(path) is on a read-only file system (\(message)); make it writable and run again"
            }
        }
        switch primaryCode {
        case SQLITE_FULL:
            return
                "database \(path): the disk is full (\(message)); nothing recorded was lost; free space and run again"
        case SQLITE_READONLY:
            return "database \(path) is read-only (\(message)); fix its permissions or the file system and run again"
        case SQLITE_CORRUPT, SQLITE_NOTADB:
            return "database \(path) is damaged (\(message)); restore it from a backup"
        case SQLITE_IOERR, SQLITE_CANTOPEN:
            return "database \(path): input/output error (\(message))"
        case SQLITE_BUSY, SQLITE_LOCKED:
            return "database \(path) is busy (\(message)); another process holds a write lock"
        default:
            // A bug (or a schema an older keyassign does not know): the statement is what a
            // report of it needs.
            return "database \(path): \(message) (SQLite code \(code))" + whileExecuting
        }
    }

    /// The description with the failed statement whatever the cause, for logs and tests.
    public var debugDescription: String {
        description.hasSuffix(whileExecuting) ? description : description + whileExecuting
    }

    /// ", while executing `SQL`", its white space folded and cut at 300 characters: the
    /// import's multi-row INSERT is thousands of placeholders long.
    private var whileExecuting: String {
        guard let sql else { return "" }
        let folded = sql.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }).joined(
            separator: " ")
        guard !folded.isEmpty else { return "" }
        let limit = 300
        let shown = folded.count > limit ? folded.prefix(limit) + "…" : folded
        return ", while executing `\(shown)`"
    }

}

/// A database that could not be opened at all. Its own type because the missing file is the
/// user's mistake (EX_DATAERR) while a failed open is the file system's (EX_IOERR), and both
/// messages stay as they were when these were `KeyAssignError`s.
public enum DatabaseOpenError: ExitStatusError, CustomStringConvertible, Sendable {
    /// A reading command was pointed at a path with no file.
    case missing(path: String)
    /// SQLite could not open (or create) the file.
    case cannotOpen(DatabaseError)

    public var status: ExitStatus {
        switch self {
        case .missing: return .dataError
        case .cannotOpen: return .ioError
        }
    }

    public var description: String {
        switch self {
        case .missing(let path):
            return "no database at \(path) (import some CSV files first, or pass --db)"
        case .cannotOpen(let error):
            return "cannot open database \(error.path): \(error.message)"
        }
    }
}

/// Free space and the read-only flag of the file system holding a path, for error messages.
struct FileSystemSpace {
    var availableBytes: UInt64
    var isReadOnly: Bool

    /// Less than this is "full" for SQLite: one WAL index page is 32 KiB.
    var isNearlyFull: Bool { availableBytes < 256 * 1024 }

    init?(directoryOf path: String) {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        var info = statvfs()
        guard statvfs(directory, &info) == 0 else { return nil }
        availableBytes = UInt64(info.f_bavail) * UInt64(info.f_frsize)
        isReadOnly = (info.f_flag & UInt(ST_RDONLY)) != 0
    }
}
