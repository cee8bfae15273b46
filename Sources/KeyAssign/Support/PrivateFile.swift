#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes a whole file that only its owner may read (mode 0600), atomically: under a fresh
/// temporary name beside it, created with O_EXCL|O_NOFOLLOW so that a planted file or
/// symlink in a shared directory is never opened and written through, then renamed into
/// place. A reader sees the old file or the complete new one. Reports name customers.
public enum PrivateFile {
    public static func write(_ text: String, to path: String) throws {
        try RegularFile.checkOutputPath(path, flag: nil)
        var temporary = ""
        var fd: Int32 = -1
        // A name nobody can guess; O_EXCL makes even a guessed one harmless.
        for _ in 0..<8 {
            temporary = path + ".tmp-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0o600)
            if fd >= 0 || errno != EEXIST { break }
        }
        guard fd >= 0 else {
            throw KeyAssignError(.ioError, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        guard RegularFile.isRegular(fd) else {
            close(fd)
            unlink(temporary)
            throw KeyAssignError(.ioError, "cannot write \(path): \(temporary) is not a regular file")
        }
        var failure: Int32 = 0
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < raw.count {
                #if canImport(Glibc)
                    let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                #else
                    let n = Darwin.write(fd, raw.baseAddress! + offset, raw.count - offset)
                #endif
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    failure = n < 0 ? errno : EIO
                    return
                }
                offset += n
            }
        }
        // The umask cannot widen 0600, but fchmod says it outright.
        if failure == 0 && (fchmod(fd, 0o600) != 0 || fsync(fd) != 0) { failure = errno }
        if close(fd) != 0 && failure == 0 { failure = errno }
        if failure == 0 && rename(temporary, path) != 0 { failure = errno }
        if failure != 0 {
            unlink(temporary)
            throw KeyAssignError(.ioError, "cannot write \(path): \(String(cString: strerror(failure)))")
        }
    }
}
