import KeyAssign

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes key files so that a reader never sees a half-written file and a private key is
/// never readable by others, not even for an instant.
enum KeyFileWriter {
    enum Outcome { case created, alreadyExisted }

    /// Creates `path` with `bytes` and mode `mode` unless it already exists. The bytes go to a
    /// temporary sibling created with that mode (so the umask can only narrow it), which is
    /// then hard-linked into place: `link` refuses to replace an existing file, so two
    /// processes racing to create the same key keep the first one complete.
    static func createExclusively(_ path: String, _ bytes: [UInt8], mode: mode_t) throws -> Outcome {
        let temporary = try writeTemporarySibling(of: path, bytes, mode: mode)
        defer { unlink(temporary) }
        if link(temporary, path) == 0 { return .created }
        let error = errno
        if error == EEXIST { return .alreadyExisted }
        throw KeyAssignError(.ioError, "cannot create \(path): \(String(cString: strerror(error)))")
    }

    /// Replaces `path` atomically with `bytes` (mode `mode`).
    static func replace(_ path: String, _ bytes: [UInt8], mode: mode_t) throws {
        let temporary = try writeTemporarySibling(of: path, bytes, mode: mode)
        guard rename(temporary, path) == 0 else {
            let error = errno
            unlink(temporary)
            throw KeyAssignError(.ioError, "cannot write \(path): \(String(cString: strerror(error)))")
        }
    }

    private static func writeTemporarySibling(of path: String, _ bytes: [UInt8], mode: mode_t) throws -> String {
        var template = Array((path + ".tmp-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw KeyAssignError(.ioError, "cannot create a file beside \(path): \(String(cString: strerror(errno)))")
        }
        let temporary = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var failure: Int32 = 0
        // mkstemp creates 0600; widen only for files meant to be public.
        if fchmod(fd, mode) != 0 { failure = errno }
        var offset = 0
        while failure == 0 && offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                failure = errno
            } else {
                offset += written
            }
        }
        if failure == 0 && fsync(fd) != 0 { failure = errno }
        close(fd)
        if failure != 0 {
            unlink(temporary)
            throw KeyAssignError(.ioError, "cannot write \(path): \(String(cString: strerror(failure)))")
        }
        return temporary
    }
}
