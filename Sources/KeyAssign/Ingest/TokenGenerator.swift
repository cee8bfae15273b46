import COpenSSL

/// Random UUID (version 4) strings for `work.idempotency_token`, one per imported row.
///
/// Randomness comes from OpenSSL's CSPRNG (seeded by the kernel) 64 KiB at a time, 4096
/// tokens per refill, not one call per row: a million-row import would otherwise spend more
/// time fetching randomness than parsing. (Swift's SystemRandomNumberGenerator makes one
/// getrandom(2) call per 8 bytes, and getrandom itself is not visible to Swift through Glibc.)
final class TokenGenerator {
    private static let poolSize = 64 * 1024
    private let pool: UnsafeMutablePointer<UInt8>
    private var used: Int
    /// The current token's 36 ASCII bytes.
    private let text: UnsafeMutablePointer<UInt8>

    init() {
        pool = .allocate(capacity: Self.poolSize)
        text = .allocate(capacity: 36)
        used = Self.poolSize
    }

    deinit {
        pool.deallocate()
        text.deallocate()
    }

    /// The next token, valid until the next call.
    func next() throws -> UnsafeRawBufferPointer {
        if used + 16 > Self.poolSize {
            try refill()
        }
        let bytes = pool + used
        used += 16
        bytes[6] = (bytes[6] & 0x0f) | 0x40  // version 4
        bytes[8] = (bytes[8] & 0x3f) | 0x80  // RFC 4122 variant
        let digits: StaticString = "0123456789abcdef"
        let hex = digits.utf8Start
        var out = 0
        for index in 0..<16 {
            if index == 4 || index == 6 || index == 8 || index == 10 {
                text[out] = UInt8(ascii: "-")
                out += 1
            }
            text[out] = hex[Int(bytes[index] >> 4)]
            text[out + 1] = hex[Int(bytes[index] & 0x0f)]
            out += 2
        }
        return UnsafeRawBufferPointer(start: text, count: 36)
    }

    private func refill() throws {
        guard RAND_bytes(pool, Int32(Self.poolSize)) == 1 else {
            throw KeyAssignError(.ioError, "cannot get random bytes for idempotency tokens: \(OpenSSLErrors.drain())")
        }
        used = 0
    }
}
