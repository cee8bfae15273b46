#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads small files (keys, stored replies) whole, with errors a person can act on.
enum SmallFile {
    enum Failure: Error {
        case system(String)
        case tooLarge(Int)
        /// A FIFO, a device, a directory: refused without reading (`RegularFile`).
        case notRegular(String)

        var description: String {
            switch self {
            case .system(let reason): return "cannot read it (\(reason))"
            case .notRegular(let reason): return "cannot read it: \(reason)"
            case .tooLarge(let limit): return "larger than \(limit) bytes"
            }
        }
    }

    /// Regular files only (`RegularFile`: a FIFO or a device is refused without blocking); the
    /// cap keeps a mistyped path to a huge file from hanging keyassign.
    static func contents(of path: String, limit: Int) -> Result<[UInt8], Failure> {
        func systemFailure() -> Failure { .system(String(cString: strerror(errno))) }
        let fd: Int32
        switch RegularFile.openForReading(path) {
        case .success(let opened): fd = opened
        case .failure(let refusal):
            return .failure(refusal.notRegular ? .notRegular(refusal.reason) : .system(refusal.reason))
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(systemFailure())
            }
            if count == 0 { return .success(bytes) }
            bytes.append(contentsOf: chunk[..<count])
            if bytes.count > limit { return .failure(.tooLarge(limit)) }
        }
    }
}
