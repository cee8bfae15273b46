import COpenSSL

/// Small bridges between Swift byte buffers and OpenSSL memory BIOs, shared by the signer and
/// the key ring.
package enum OpenSSLBIO {
    /// Runs `body` with a read-only memory BIO over `bytes`. The BIO never outlives the call,
    /// so it can borrow the buffer instead of copying it.
    package static func withReadBIO<R>(_ bytes: [UInt8], _ body: (OpaquePointer) throws -> R) throws -> R {
        try bytes.withUnsafeBytes { raw -> R in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(clamping: raw.count)) else {
                throw KeyAssignError(.ioError, "OpenSSL could not allocate a memory buffer: \(OpenSSLErrors.drain())")
            }
            defer { BIO_free(bio) }
            return try body(bio)
        }
    }

    /// Runs `write` against a fresh memory BIO and returns what it wrote.
    /// `write` returns OpenSSL's success flag (1 on success).
    package static func collect(_ what: String, _ write: (OpaquePointer) -> Int32) throws -> [UInt8] {
        guard let bio = BIO_new(BIO_s_mem()) else {
            throw KeyAssignError(.ioError, "OpenSSL could not allocate a memory buffer: \(OpenSSLErrors.drain())")
        }
        defer { BIO_free(bio) }
        guard write(bio) == 1 else {
            throw KeyAssignError(.ioError, "OpenSSL could not encode \(what): \(OpenSSLErrors.drain())")
        }
        var data: UnsafeMutablePointer<CChar>?
        let length = keyassign_BIO_get_mem_data(bio, &data)
        guard length > 0, let data else { return [] }
        return data.withMemoryRebound(to: UInt8.self, capacity: Int(length)) {
            Array(UnsafeBufferPointer(start: $0, count: Int(length)))
        }
    }
}
