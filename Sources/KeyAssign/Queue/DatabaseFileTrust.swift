import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Whether the work database's files are keyassign's own, judged before SQLite opens them.
///
/// The database holds customers' names and emails and decides what is sent to the license
/// server, so a file another local user can plant or write is refused (exit 77, EX_NOPERM),
/// the way ssh judges `authorized_keys` and logrotate its configuration:
/// - the `--db` path itself is a symlink (SQLite follows it and would create or use the file
///   at the link's target, in the planter's directory);
/// - its directory is writable by group or others without the sticky bit (anyone who can
///   write there can swap the file), or is owned by someone other than the user or root; an
///   ancestor writable by group or others without the sticky bit;
/// - the database, its `-wal` or `-shm`, or its lock file is not a regular file, is owned by
///   another user, or is writable by group or others.
///
/// `--allow-shared-db` (a deliberately shared set-up: a group-writable service directory, a
/// database reached through a symlink) turns these refusals off; the lock is on the
/// database file's identity either way (`DatabaseLock`), so two paths to one file are still
/// one writer at a time.
public enum DatabaseFileTrust {
    private static let sharedAllowed = Atomic<Bool>(false)

    /// `--allow-shared-db`: set once by the command line, before any database is opened.
    public static func allowShared(_ allowed: Bool) {
        sharedAllowed.store(allowed, ordering: .releasing)
    }

    public static var isSharedAllowed: Bool { sharedAllowed.load(ordering: .acquiring) }

    /// True for the names SQLite keeps in memory: they have no files to judge or lock.
    static func isInMemory(_ path: String) -> Bool {
        path.isEmpty || path == ":memory:" || path.hasPrefix("file::memory:")
    }

    /// Checks the path, its directory and the files already there; with `create`, creates a
    /// missing database file 0600 with O_EXCL|O_NOFOLLOW (so a name planted meanwhile is
    /// never written through). Throws `KeyAssignError(.noPermission)` naming the reason.
    static func prepare(_ path: String, create: Bool) throws {
        if isInMemory(path) { return }
        let shared = isSharedAllowed
        if !shared { try checkDirectories(of: path) }
        if create {
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd >= 0 {
                // The umask cannot widen 0600; fchmod says it outright.
                _ = fchmod(fd, 0o600)
                close(fd)
            }
        }
        if shared { return }
        var info = stat()
        if lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK {
            throw refusal(
                "the database path \(path) is a symbolic link (SQLite would use the file it points to, "
                    + "wherever that is); give the real path")
        }
        for (file, role) in [
            (path, "database"), (path + "-wal", "write-ahead log"), (path + "-shm", "shared-memory index"),
        ] {
            try checkFile(file, role: role)
        }
    }

    /// Checks one of the database's files, if it exists: a regular file, the user's own, and
    /// writable by nobody else.
    static func checkFile(_ path: String, role: String) throws {
        if isSharedAllowed { return }
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        try check(info, path: path, role: role)
    }

    /// The same judgement for a file already open (the lock file), by its descriptor.
    static func checkOpenFile(_ fd: Int32, path: String, role: String) throws {
        if isSharedAllowed { return }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return }
        try check(info, path: path, role: role)
    }

    private static func check(_ info: stat, path: String, role: String) throws {
        let type = info.st_mode & S_IFMT
        if type == S_IFLNK {
            throw refusal("the \(role) \(path) is a symbolic link")
        }
        guard type == S_IFREG else {
            throw refusal("the \(role) \(path) is not a regular file")
        }
        if info.st_uid != geteuid() {
            throw refusal(
                "the \(role) \(path) is owned by \(userName(info.st_uid)), not by \(userName(geteuid())) "
                    + "who runs keyassign")
        }
        if info.st_mode & (S_IWGRP | S_IWOTH) != 0 {
            let mode = String(info.st_mode & 0o7777, radix: 8)
            throw refusal(
                "the \(role) \(path) is writable by \(info.st_mode & S_IWOTH != 0 ? "others" : "its group") "
                    + "(mode \(mode)); chmod 600 it")
        }
    }

    /// The directory that holds the database, and every directory above it.
    private static func checkDirectories(of path: String) throws {
        let directory = parent(of: path)
        var info = stat()
        guard stat(directory, &info) == 0 else { return }  // SQLite reports a missing directory
        if info.st_uid != 0 && info.st_uid != geteuid() {
            throw refusal(
                "the database's directory \(directory) is owned by \(userName(info.st_uid)), who could "
                    + "replace the database")
        }
        var current = resolved(directory) ?? directory
        while true {
            if stat(current, &info) == 0 && info.st_mode & (S_IWGRP | S_IWOTH) != 0 && info.st_mode & S_ISVTX == 0 {
                let mode = String(info.st_mode & 0o7777, radix: 8)
                throw refusal(
                    "the directory \(current) (mode \(mode)) is writable by "
                        + "\(info.st_mode & S_IWOTH != 0 ? "others" : "its group") and not sticky: anyone who "
                        + "can write there can replace the database")
            }
            if current == "/" || current.isEmpty { break }
            let up = parent(of: current)
            if up == current { break }
            current = up
        }
    }

    /// `path` with its directory resolved (symlinks and `..` taken out), its last component as
    /// it is; `path` itself when the directory cannot be resolved.
    static func withDirectoryResolved(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        let name = trimmed.lastIndex(of: "/").map { trimmed[trimmed.index(after: $0)...] } ?? trimmed
        guard !name.isEmpty, name != ".", name != "..", let directory = resolved(parent(of: path)) else { return path }
        return (directory == "/" ? "" : directory) + "/" + name
    }

    private static func parent(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        let head = trimmed[..<slash]
        return head.isEmpty ? "/" : String(head)
    }

    private static func resolved(_ path: String) -> String? {
        guard let real = realpath(path, nil) else { return nil }
        defer { free(real) }
        return String(cString: real)
    }

    private static func userName(_ uid: uid_t) -> String {
        if let entry = getpwuid(uid), let name = entry.pointee.pw_name {
            return "\(String(cString: name)) (uid \(uid))"
        }
        return "uid \(uid)"
    }

    private static func refusal(_ reason: String) -> KeyAssignError {
        KeyAssignError(
            .noPermission,
            "refusing the work database: \(reason). Only the user who runs keyassign may "
                + "write its database, write-ahead log and lock file (--allow-shared-db accepts a shared set-up)")
    }
}
