#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Buffered text output to stdout or to a file. A file is written under a temporary name
/// and renamed into place by `finish()`, so that a report a cron job is reading is either
/// the old one or the complete new one, never half of one.
public final class TextOutput {
    private let file: UnsafeMutablePointer<FILE>
    private let finalPath: String?
    private let temporaryPath: String?
    private var finished = false
    private var readerGone = false

    /// Standard output.
    public init() {
        // Its own FILE over a duplicate of descriptor 1: the C `stdout` global is shared
        // mutable state that Swift 6 rightly refuses to touch from arbitrary threads.
        file = fdopen(dup(STDOUT_FILENO), "w") ?? fopen("/dev/null", "w")!
        finalPath = nil
        temporaryPath = nil
    }

    /// A file holding license keys and customers' names and emails: created 0600 whatever
    /// the umask, written as `PATH.partial` and renamed into place by `finish()`.
    public init(path: String) throws {
        // A FIFO or a device at the path is refused before anything is written (exit 78).
        try RegularFile.checkOutputPath(path, flag: nil)
        let temporary = path + ".partial"
        let fd = try TextOutput.createPrivate(temporary, finalPath: path)
        guard let handle = fdopen(fd, "w") else {
            let reason = String(cString: strerror(errno))
            close(fd)
            unlink(temporary)
            throw KeyAssignError(.ioError, "cannot write \(path): \(reason)")
        }
        file = handle
        finalPath = path
        temporaryPath = temporary
    }

    /// Creates `temporary` as a new file, mode 0600, never through a symbolic link: with
    /// `O_EXCL | O_NOFOLLOW` a link planted at that name (in a directory others can write)
    /// makes the open fail instead of writing personal data wherever it points. A regular
    /// file left by an interrupted report is ours to replace; anything else is refused.
    static func createPrivate(_ temporary: String, finalPath: String) throws -> Int32 {
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC
        var fd = open(temporary, flags, 0o600)
        if fd < 0 && errno == EEXIST {
            var info = stat()
            if lstat(temporary, &info) == 0 && info.st_mode & S_IFMT == S_IFREG && info.st_uid == geteuid() {
                unlink(temporary)
                fd = open(temporary, flags, 0o600)
            } else {
                throw KeyAssignError(
                    .ioError,
                    "cannot write \(finalPath): \(temporary) already exists and is not a file "
                        + "keyassign left (a symbolic link or another owner's file); it is not followed or "
                        + "replaced: remove it, or write somewhere only you can write")
            }
        }
        guard fd >= 0 else {
            throw KeyAssignError(
                .ioError, "cannot write \(finalPath): \(temporary): \(String(cString: strerror(errno)))")
        }
        guard RegularFile.isRegular(fd) else {
            close(fd)
            throw KeyAssignError(.ioError, "cannot write \(finalPath): \(temporary) is not a regular file")
        }
        // Exactly 0600: a umask such as 0277 would otherwise leave a file its owner cannot rewrite.
        _ = fchmod(fd, 0o600)
        return fd
    }

    public func write(_ text: String) {
        // SIGPIPE is ignored (see main.swift): when the reader of standard output is gone
        // (`keyassign report | head`), stop writing instead of failing every buffer again.
        if readerGone { return }
        var text = text
        text.withUTF8 { bytes in
            if fwrite(bytes.baseAddress, 1, bytes.count, file) < bytes.count && errno == EPIPE && finalPath == nil {
                readerGone = true
            }
        }
    }

    public func write(bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        _ = fwrite(base, 1, bytes.count, file)
    }

    /// A report that failed before `finish()` leaves no half-written file behind.
    deinit {
        guard !finished else { return }
        fclose(file)
        if let temporaryPath { unlink(temporaryPath) }
    }

    /// Flushes, and for a file checks every write landed before renaming it into place.
    public func finish() throws {
        finished = true
        if let finalPath, let temporaryPath {
            let failed = ferror(file) != 0 || fflush(file) != 0 || fsync(fileno(file)) != 0
            let reason = String(cString: strerror(errno))
            fclose(file)
            if failed {
                unlink(temporaryPath)
                throw KeyAssignError(.ioError, "cannot write \(finalPath): \(reason)")
            }
            guard rename(temporaryPath, finalPath) == 0 else {
                throw KeyAssignError(.ioError, "cannot write \(finalPath): \(String(cString: strerror(errno)))")
            }
        } else {
            fclose(file)
        }
    }
}
