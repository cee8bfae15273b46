import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One writer command at a time per work database: `run`, `sync`, `import`, `retry` and
/// `reconcile` hold an exclusive `flock(2)` on the database file itself, and one on `DB.lock`
/// beside it, for as long as they work.
///
/// The lock is on the database file's identity (device and inode), not on the text of its
/// path: a symlink, a hard link, a bind mount or a path with `..` reach the same file, and an
/// earlier version that locked only `PATH.lock` let a second run through another path call the
/// live run dead and resend its rows. `DB.lock` (beside the resolved path) is still taken, for
/// an older keyassign or a script that locks it, and holds the holder's line for the refusal.
///
/// `flock` on the database file does not meet SQLite's own locks (POSIX `fcntl` locks, which
/// are separate from `flock` on Linux's local file systems). But closing any descriptor of a
/// file drops every POSIX lock the process holds on it, SQLite's included, so the descriptor
/// of the database file is never closed: it stays open, unlocked when released, for the
/// process's life (one per database file).
///
/// The kernel drops the lock when the holding process ends, however it ends (kill -9, OOM,
/// a container torn down), so liveness is never guessed: an earlier version kept the holder's
/// pid and host name in a table and asked `kill(pid, 0)`, which was wrong in containers (a
/// new host name every run, pid 1 everywhere, pids reused after a reboot, pods sharing a
/// host name but not a pid namespace). The holder still writes who it is into the file, but
/// only for the refusal message: nothing decides on it.
///
/// Inside one process the lock is re-entrant (`sync` holds it across its import and its run):
/// `flock` locks belong to an open file description, so a second `open` + `flock` of the
/// same file by the same process would refuse itself.
public final class DatabaseLock: Sendable {
    /// The lock file's path for a database path: beside the file the path resolves to (a
    /// symlink's target, `..` taken out), so that two spellings of one path share it.
    public static func path(forDatabase databasePath: String) -> String {
        guard let real = realpath(databasePath, nil) else { return databasePath + ".lock" }
        defer { free(real) }
        return String(cString: real) + ".lock"
    }

    private let key: FileKey
    /// A hold is released once, whoever calls `release` (a `defer`, then `deinit`).
    private let released = Atomic<Bool>(false)

    /// Takes the lock of the database at `databasePath` for `command` (shown to whoever is
    /// refused), waiting up to `wait` seconds for the holder to finish. Creates a missing
    /// database file (0600; every caller is about to write it). Fails with status 75 naming
    /// the holder, 77 when the files are not the user's own (`DatabaseFileTrust`). An
    /// in-memory database needs no lock (nil).
    public static func acquire(databasePath: String, command: String, wait: Double = 0) throws -> DatabaseLock? {
        if DatabaseFileTrust.isInMemory(databasePath) { return nil }
        try DatabaseFileTrust.prepare(databasePath, create: true)
        let key = try Identity.shared.key(of: databasePath)
        if Registry.shared.retainIfHeld(key) {
            return DatabaseLock(key: key)
        }
        let lockPath = path(forDatabase: databasePath)
        let deadline = Timestamps.monotonic() + max(0, wait)
        let databaseFD = try Identity.shared.descriptor(key)
        // The database file first: whoever holds it, through whichever path, is the writer.
        try take(databaseFD, deadline: deadline, what: databasePath) {
            refusal(databasePath: databasePath, lockPath: lockPath, holder: holderText(atPath: lockPath))
        }
        var fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 && (errno == EACCES || errno == EROFS) {
            // A lock file someone else created: a read-only descriptor locks just as well.
            fd = open(lockPath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        }
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            _ = flock(databaseFD, LOCK_UN)
            throw KeyAssignError(.ioError, "cannot open the lock file \(lockPath): \(reason)")
        }
        do {
            try DatabaseFileTrust.checkOpenFile(fd, path: lockPath, role: "lock file")
            try take(fd, deadline: deadline, what: lockPath) {
                refusal(databasePath: databasePath, lockPath: lockPath, holder: holderText(fd))
            }
        } catch {
            close(fd)
            _ = flock(databaseFD, LOCK_UN)
            throw error
        }
        Registry.shared.hold(key, fd: fd, databaseFD: databaseFD)
        record(fd, command: command)
        return DatabaseLock(key: key)
    }

    /// flock(LOCK_EX) on `fd`, retrying until `deadline`; `refused` makes the error then.
    private static func take(_ fd: Int32, deadline: Double, what: String, refused: () -> KeyAssignError) throws {
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let failure = errno
            if failure == EINTR { continue }
            guard failure == EWOULDBLOCK else {
                throw KeyAssignError(.ioError, "cannot lock \(what): \(String(cString: strerror(failure)))")
            }
            if Timestamps.monotonic() >= deadline { throw refused() }
            usleep(100_000)
        }
    }

    private static func refusal(databasePath: String, lockPath: String, holder: String) -> KeyAssignError {
        KeyAssignError(
            .locked,
            "database \(databasePath) is in use by \(holder); one writer at a time "
                + "(run, sync, import, retry, reconcile), whichever path reaches the file. The lock (on the "
                + "database file and \(lockPath)) is released by the kernel when that process ends, however "
                + "it ends: try again later")
    }

    private init(key: FileKey) {
        self.key = key
    }

    deinit {
        release()
    }

    /// Adds the run's id to what the lock file says about its holder.
    public func noteRun(_ runID: Int64, command: String) {
        if let fd = Registry.shared.descriptor(key) { DatabaseLock.record(fd, command: command, runID: runID) }
    }

    /// Releases this hold; the lock itself goes when the process's last hold does.
    public func release() {
        guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        Registry.shared.release(key)
    }

    /// Who holds the lock, as the holder wrote it into the lock file at `path`; a holder
    /// through another path to the same file (a hard link) wrote its own lock file instead.
    private static func holderText(atPath path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return "another keyassign process" }
        defer { close(fd) }
        return holderText(fd)
    }

    /// Who holds the lock, as the holder wrote it; what a refusal names.
    private static func holderText(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = pread(fd, &buffer, buffer.count, 0)
        let text =
            count > 0
            ? String(decoding: buffer[0..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : ""
        // The holder writes its line right after taking the lock: an empty file is a holder
        // caught in between (or an older keyassign that locks without writing).
        return text.isEmpty ? "another keyassign process" : text
    }

    /// Writes "keyassign run (run 7), pid 12 on host h, started …" for the refusal message.
    /// Informational only: a pid or host name from another namespace means nothing here.
    private static func record(_ fd: Int32, command: String, runID: Int64? = nil) {
        let run = runID.map { " (run \($0))" } ?? ""
        let line = "keyassign \(command)\(run), pid \(getpid()) on host \(hostName), started \(startedAt)\n"
        let bytes = Array(line.utf8)
        guard ftruncate(fd, 0) == 0 else { return }
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    private static let startedAt = Timestamps.nowISO8601()

    static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "unknown" : name
    }

    struct FileKey: Hashable, Sendable {
        var device: UInt64
        var inode: UInt64
    }

    /// One descriptor of each database file this process has locked or tried to, by device
    /// and inode, opened once and never closed (see the type's comment: closing one would
    /// drop SQLite's own locks on the file).
    final class Identity: Sendable {
        static let shared = Identity()

        private let descriptors = Mutex<[FileKey: Int32]>([:])

        /// The identity of the file at `path`, opening it (read-only) the first time.
        func key(of path: String) throws -> FileKey {
            var info = stat()
            // A file already kept is not opened again: closing that second descriptor would
            // drop the locks SQLite holds on the file through its own.
            if stat(path, &info) == 0 {
                let key = FileKey(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
                if descriptors.withLock({ $0[key].map(Self.isLinked) ?? false }) { return key }
            }
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else {
                throw KeyAssignError(
                    errno == EACCES ? .noPermission : .ioError,
                    "cannot open the database \(path) to lock it: \(String(cString: strerror(errno)))")
            }
            guard fstat(fd, &info) == 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw KeyAssignError(.ioError, "cannot lock the database \(path): \(reason)")
            }
            let key = FileKey(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
            // Kept, or (the path was replaced between the stat and the open, onto a file already
            // kept) left open for the same reason: one descriptor is cheaper than SQLite's locks.
            // A kept descriptor of a deleted file gives way: its inode number may be the new
            // file's, and a lock on the deleted one would keep nobody out. (It stays open.)
            descriptors.withLock { descriptors in
                if descriptors[key].map(Self.isLinked) ?? false { return }
                descriptors[key] = fd
            }
            return key
        }

        /// The descriptor's file still has a name (it was not deleted since it was opened).
        private static func isLinked(_ fd: Int32) -> Bool {
            var info = stat()
            return fstat(fd, &info) == 0 && info.st_nlink > 0
        }

        func descriptor(_ key: FileKey) throws -> Int32 {
            guard let fd = descriptors.withLock({ $0[key] }) else {
                throw KeyAssignError(.ioError, "cannot lock the database: its descriptor is gone")
            }
            return fd
        }
    }

    /// The locks this process holds, by the database file's device and inode (two paths to
    /// one file are one lock), with how many holds each has.
    final class Registry: Sendable {
        static let shared = Registry()

        struct Held: Sendable {
            /// The lock file `DB.lock`.
            var fd: Int32
            /// The database file (kept open by `Identity`).
            var databaseFD: Int32
            var holds: Int
        }

        private let held = Mutex<[FileKey: Held]>([:])

        func retainIfHeld(_ key: FileKey) -> Bool {
            held.withLock { held in
                guard held[key] != nil else { return false }
                held[key]!.holds += 1
                return true
            }
        }

        func hold(_ key: FileKey, fd: Int32, databaseFD: Int32) {
            held.withLock { $0[key] = Held(fd: fd, databaseFD: databaseFD, holds: 1) }
        }

        func descriptor(_ key: FileKey) -> Int32? {
            held.withLock { $0[key]?.fd }
        }

        func release(_ key: FileKey) {
            held.withLock { held in
                guard let entry = held[key] else { return }
                if entry.holds > 1 {
                    held[key]!.holds -= 1
                    return
                }
                held[key] = nil
                // Empty the holder line first: a reader then sees no stale holder.
                _ = ftruncate(entry.fd, 0)
                // Closing the last descriptor of the open file description releases the flock.
                close(entry.fd)
                // The database file's descriptor stays open (SQLite's locks); only unlocked.
                _ = flock(entry.databaseFD, LOCK_UN)
            }
        }
    }
}
