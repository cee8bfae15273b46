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

    /// Standard output.
    public init() {
        // Its own FILE over a duplicate of descriptor 1: the C `stdout` global is shared
        // mutable state that Swift 6 rightly refuses to touch from arbitrary threads.
        file = fdopen(dup(STDOUT_FILENO), "w") ?? fopen("/dev/null", "w")!
        finalPath = nil
        temporaryPath = nil
    }

    public init(path: String) throws {
        let temporary = path + ".partial"
        guard let handle = fopen(temporary, "w") else {
            throw KeyAssignError(.ioError, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        file = handle
        finalPath = path
        temporaryPath = temporary
    }

    public func write(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            _ = fwrite(bytes.baseAddress, 1, bytes.count, file)
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
