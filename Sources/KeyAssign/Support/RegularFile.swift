#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Files named on the command line are regular files, nothing else. Opening a FIFO for
/// reading blocks until a writer comes (forever, at 2 a.m.); a device can be endless or have
/// side effects. So a file is opened with `O_NONBLOCK` (a FIFO then opens at once), checked
/// with `fstat` on the descriptor actually opened (no race with a rename), and refused unless
/// it is a regular file; only then is it read, in blocking mode again. Output paths are
/// checked before any lock is taken: a command refuses at once, never while it holds the
/// database.
enum RegularFile {
    struct Refusal: Error {
        /// The system's reason (`No such file or directory`) or what the path is instead of a
        /// regular file (`a FIFO (named pipe)`).
        var reason: String
        var notRegular: Bool
    }

    /// What a file type is, in words.
    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFDIR: "a directory"
        case S_IFSOCK: "a socket"
        case S_IFLNK: "a symbolic link"
        default: "not a regular file"
        }
    }

    /// A descriptor open for reading on a regular file (blocking), or why not. The caller closes it.
    static func openForReading(_ path: String) -> Result<Int32, Refusal> {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return .failure(Refusal(reason: String(cString: strerror(errno)), notRegular: false)) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            return .failure(Refusal(reason: reason, notRegular: false))
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            return .failure(Refusal(reason: "it is \(kind(info.st_mode)), not a regular file", notRegular: true))
        }
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
        return .success(fd)
    }

    /// After creating a file with `O_NONBLOCK`: true when `fd` is a regular file.
    static func isRegular(_ fd: Int32) -> Bool {
        var info = stat()
        return fstat(fd, &info) == 0 && info.st_mode & S_IFMT == S_IFREG
    }

    /// An output path is fine when nothing is there yet, or a regular file (replaced by
    /// rename). A FIFO, a device, a directory or a socket there is refused, as the flag's
    /// configuration error (exit 78), naming `flag` (nil: a report's output). Never opens the path.
    static func checkOutputPath(_ path: String, flag: String?) throws {
        var info = stat()
        guard stat(path, &info) == 0 else { return }  // nothing there (or unreachable: the write will say)
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw KeyAssignError(
                .config,
                "\(flag ?? "cannot write") \(path): it is \(kind(info.st_mode)), not a regular file; give the path of a file"
            )
        }
    }
}
