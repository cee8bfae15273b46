import COpenSSL

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An incremental SHA-256 on OpenSSL's EVP interface, fed as a file is read, so that a file
/// is hashed from exactly the bytes that were imported.
public final class SHA256Digest {
    private let context: OpaquePointer
    private let algorithm: OpaquePointer

    public init() throws {
        guard let algorithm = EVP_MD_fetch(nil, "SHA256", nil) else {
            throw KeyAssignError(.config, "OpenSSL has no SHA-256: \(OpenSSLErrors.drain())")
        }
        guard let context = EVP_MD_CTX_new() else {
            EVP_MD_free(algorithm)
            throw KeyAssignError(.config, "OpenSSL: cannot create a digest context: \(OpenSSLErrors.drain())")
        }
        guard EVP_DigestInit_ex2(context, algorithm, nil) == 1 else {
            EVP_MD_CTX_free(context)
            EVP_MD_free(algorithm)
            throw KeyAssignError(.config, "OpenSSL: SHA-256 init failed: \(OpenSSLErrors.drain())")
        }
        self.context = context
        self.algorithm = algorithm
    }

    deinit {
        EVP_MD_CTX_free(context)
        EVP_MD_free(algorithm)
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        // EVP_DigestUpdate on an initialised SHA-256 context cannot fail.
        _ = EVP_DigestUpdate(context, base, bytes.count)
    }

    /// The digest as lowercase hex; the context is spent afterwards.
    public func finalHex() -> String {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        _ = EVP_DigestFinal_ex(context, &out, &length)
        return Hex.encode(out.prefix(Int(length)))
    }
}

public enum FileDigest {
    /// SHA-256 of a whole file (hex) and its size, read in chunks.
    public static func sha256(path: String) throws -> (hex: String, size: Int64) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw KeyAssignError(.dataError, "\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        return try sha256(fileDescriptor: fd, path: path)
    }

    static func sha256(fileDescriptor fd: Int32, path: String) throws -> (hex: String, size: Int64) {
        let digest = try SHA256Digest()
        let chunk = 256 * 1024
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var size: Int64 = 0
        while true {
            let n = read(fd, buffer, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw KeyAssignError(.dataError, "\(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            digest.update(UnsafeRawBufferPointer(start: buffer, count: n))
            size += Int64(n)
        }
        return (digest.finalHex(), size)
    }
}

enum Hex {
    static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
