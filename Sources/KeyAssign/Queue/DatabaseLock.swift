import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One writer command at a time per work database: `run`, `sync`, `import`, `retry` and `reconcile` hold
/// an exclusive `flock(2)` on `DB.lock` (beside the database) for as long as they work.
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
    /// The lock file's path for a database path.
    public static func path(forDatabase databasePath: String) -> String { databasePath + ".lock" }

    private let key: FileKey
    /// A hold is released once, whoever calls `release` (a `defer`, then `deinit`).
    private let released = Atomic<Bool>(false)

    /// Takes the lock of the database at `databasePath` for `command` (shown to whoever is
    /// refused), waiting up to `wait` seconds for the holder to finish. Fails with status 75
    /// naming the holder. An in-memory database needs no lock (nil).
    public static func acquire(databasePath: String, command: String, wait: Double = 0) throws -> DatabaseLock? {
        if databasePath.isEmpty || databasePath == ":memory:" || databasePath.hasPrefix("file::memory:") { return nil }
        let lockPath = path(forDatabase: databasePath)
        var fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 && (errno == EACCES || errno == EROFS) {
            // A lock file someone else created: a read-only descriptor locks just as well.
            fd = open(lockPath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        }
        guard fd >= 0 else {
            throw KeyAssignError(.ioError, "cannot open the lock file \(lockPath): \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw KeyAssignError(.ioError, "cannot open the lock file \(lockPath): \(reason)")
        }
        let key = FileKey(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        if Registry.shared.retainIfHeld(key) {
            close(fd)
            return DatabaseLock(key: key)
        }
        let deadline = Timestamps.monotonic() + max(0, wait)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let failure = errno
            if failure == EINTR { continue }
            guard failure == EWOULDBLOCK else {
                close(fd)
                throw KeyAssignError(.ioError, "cannot lock \(lockPath): \(String(cString: strerror(failure)))")
            }
            if Timestamps.monotonic() >= deadline {
                let holder = holderText(fd)
                close(fd)
                throw KeyAssignError(.locked, "database \(databasePath) is in use by \(holder); one writer at a time "
                                     + "(run, sync, import, retry, reconcile). The lock (\(lockPath)) is released by the kernel when that "
                                     + "process ends, however it ends: try again later")
            }
            usleep(100_000)
        }
        Registry.shared.hold(key, fd: fd)
        record(fd, command: command)
        return DatabaseLock(key: key)
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

    /// Who holds the lock, as the holder wrote it; what a refusal names.
    private static func holderText(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = pread(fd, &buffer, buffer.count, 0)
        let text = count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : ""
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

    /// The lock files this process holds, by device and inode (two spellings of one path are
    /// one lock), with how many holds each has.
    final class Registry: Sendable {
        static let shared = Registry()

        struct Held: Sendable {
            var fd: Int32
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

        func hold(_ key: FileKey, fd: Int32) {
            held.withLock { $0[key] = Held(fd: fd, holds: 1) }
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
            }
        }
    }
}
