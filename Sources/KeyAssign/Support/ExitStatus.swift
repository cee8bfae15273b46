/// Exit statuses are part of keyassign's interface: cron wrappers and scripts branch on them.
/// The values follow sysexits(3) where one fits.
public enum ExitStatus: Int32, Sendable {
    /// Everything ended well (`run`: every row `assigned` or `rejected`; `verify`: every reply trusted).
    case ok = 0
    /// Some work did not end well (`run`: rows `failed`, `uncertain` or left in `retry`;
    /// `verify`: a signature is invalid, missing or from an unknown key; `audit`: a discrepancy).
    case someFailed = 1
    /// `verify`: every signature holds but some payload is unusable or differs from `response`.
    case payloadMismatch = 2
    /// `run`: stopped by an auth or access refusal: a signed code 100–103 or 150, or unsigned
    /// 401/403/407 refusals of every request (see `RefusalGate`).
    case authStopped = 3
    /// `reconcile --state assigned`: the server's signed key listing contradicts rows recorded
    /// `assigned` (the key is available again, or another owner holds it): those rows were
    /// moved to `retry` or `rejected`. Someone changed the key after our assignment, or the
    /// 800 we accepted was replayed (docs/signatures.md, "Threat model").
    case contradicted = 4
    /// `run`: the server's quota is spent for now (a `--rate N/WINDOW` window is full, a 429's
    /// `Retry-After` or `X-RateLimit-Reset` lies beyond --max-wait): the run stopped cleanly,
    /// the rows not sent stay `pending`, and the next run sends them. Not a failure: a daily
    /// quota is a schedule (docs/scheduling.md; the systemd unit's `SuccessExitStatus=`).
    case quotaSpent = 10
    /// Bad flags or arguments (EX_USAGE).
    case usage = 64
    /// An input file cannot be read or has no license-key column (EX_DATAERR).
    case dataError = 65
    /// `run`: the license server stayed unreachable (nothing could be sent) for --max-wait; the
    /// rows stay pending or retry and the next run sends them (EX_UNAVAILABLE).
    case unavailable = 69
    /// The database or the file system failed (EX_IOERR): disk full, read-only, corrupt.
    case ioError = 74
    /// Another run holds the database (EX_TEMPFAIL).
    case locked = 75
    /// The work database is not the user's own to trust (EX_NOPERM): its `--db` path is a
    /// symlink, its directory is writable by others and not sticky, or the database, its
    /// write-ahead log or its lock file belongs to another user or is writable by group or
    /// others (`DatabaseFileTrust`; `--allow-shared-db` accepts a shared set-up).
    case noPermission = 77
    /// Bad configuration: unreadable or unsupported key, bad URL; `run`: the server's TLS
    /// certificate refused (not trusted, wrong host name), which no retry can fix, or stopped
    /// early because every reply failed verification the same way (a wrong --public-key, a
    /// wrong clock) or no license server answers at the URL (404, 405, an HTML page) (EX_CONFIG).
    case config = 78
    /// Stopped by SIGINT (128 + 2).
    case interrupted = 130
    /// Stopped by SIGTERM (128 + 15).
    case terminated = 143
}

/// An error that knows the exit status it ends the process with; its `description` is the
/// message for the person reading cron mail. The library throws these as they are
/// (`KeyAssignError`, `DatabaseError`, `DatabaseOpenError`) and only a command's boundary
/// turns one into a status and a line on stderr, through `ExitStatus(for:)`.
public protocol ExitStatusError: Error, CustomStringConvertible {
    var status: ExitStatus { get }
}

extension ExitStatus {
    /// The status an error ends the process with: its own when it has one; anything else is
    /// an unexpected failure of the system under keyassign (EX_IOERR).
    public init(for error: any Error) {
        self = (error as? any ExitStatusError)?.status ?? .ioError
    }
}

/// An error that carries the exit status it should end the process with and a message
/// meant for the person reading cron mail.
public struct KeyAssignError: ExitStatusError, Sendable {
    public var status: ExitStatus
    public var message: String

    public init(_ status: ExitStatus, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { message }
}
