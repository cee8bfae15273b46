/// The one base64 decoder (and, below, its one encoder), for signatures, replies' payloads and listings' payloads alike:
/// standard base64 (RFC 4648 §4) with padding, nothing else: no whitespace, no URL-safe
/// alphabet, no missing padding, padding only at the very end, no stray bits in the last
/// character. So only canonical base64 decodes: a payload encodes back to exactly the text that
/// was signed (which is how `audit` verifies a stored payload), and a signature has one
/// spelling. The server's PHP `base64_encode` never produces anything looser.
///
/// Fed in chunks (a listing's payload is ~70 MB of base64, decoded while it is digested), or
/// whole by `decode`.
struct Base64Strict {
    private static let table: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(byte)] = UInt8(index)
        }
        return table
    }()

    private let output: UnsafeMutablePointer<UInt8>?
    private let capacity: Int
    private var written = 0
    private var bits: UInt32 = 0
    private var pending = 0
    private var padding = 0
    private var failed = false

    init(capacity: Int) {
        self.capacity = capacity
        output = malloc(max(1, capacity))?.assumingMemoryBound(to: UInt8.self)
        if output == nil { failed = true }
    }

    /// The bytes `text` decodes to, or nil when it is not canonical standard base64.
    static func decode<Bytes: Collection<UInt8>>(_ text: Bytes) -> [UInt8]? {
        let decoded =
            text.withContiguousStorageIfAvailable { decodeWhole($0) }
            ?? Array(text).withUnsafeBufferPointer {
                decodeWhole($0)
            }
        return decoded.map { Array($0.buffer) }
    }

    /// `text` decoded in one call, into memory the result owns.
    static func decodeWhole(_ text: UnsafeBufferPointer<UInt8>) -> OwnedBytes? {
        var decoder = Base64Strict(capacity: text.count / 4 * 3 + 3)
        decoder.feed(text)
        return decoder.finish()
    }

    mutating func feed(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard !failed, let output else { return }
        Self.table.withUnsafeBufferPointer { table in
            var index = 0
            while index < bytes.count {
                // Whole quads whenever nothing is pending and no padding has been seen: the hot
                // loop. It starts again after each quad the byte-at-a-time path completes, since
                // a listing's text arrives in runs of ~64 bytes between the `\/` escapes.
                if pending == 0 && padding == 0 {
                    let quads = (bytes.count - index) / 4
                    let limit = index + min(quads, (capacity - written) / 3) * 4
                    var at = written
                    while index < limit {
                        let a = table[Int(bytes[index])]
                        let b = table[Int(bytes[index + 1])]
                        let c = table[Int(bytes[index + 2])]
                        let d = table[Int(bytes[index + 3])]
                        if (a | b | c | d) & 0xC0 != 0 { break }  // not the alphabet ('=' too): a byte at a time
                        let bits = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                        output[at] = UInt8(truncatingIfNeeded: bits >> 16)
                        output[at + 1] = UInt8(truncatingIfNeeded: bits >> 8)
                        output[at + 2] = UInt8(truncatingIfNeeded: bits)
                        at += 3
                        index += 4
                    }
                    written = at
                    guard index < bytes.count else { return }
                }
                let byte = bytes[index]
                index += 1
                if byte == UInt8(ascii: "=") {
                    padding += 1
                    bits <<= 6
                    pending += 1
                    if padding > 2 {
                        failed = true
                        return
                    }
                } else {
                    let value = table[Int(byte)]
                    if value == 0xFF || padding > 0 {
                        failed = true
                        return
                    }
                    bits = bits << 6 | UInt32(value)
                    pending += 1
                }
                if pending == 4 {
                    guard written + 3 <= capacity else {
                        failed = true
                        return
                    }
                    output[written] = UInt8(truncatingIfNeeded: bits >> 16)
                    output[written + 1] = UInt8(truncatingIfNeeded: bits >> 8)
                    output[written + 2] = UInt8(truncatingIfNeeded: bits)
                    written += 3
                    bits = 0
                    pending = 0
                    if padding > 0 {
                        // Padding ends the text: the quad that holds it must be the last, and
                        // the bits it stands for must be zero.
                        if output[written - 1] != 0 || (padding == 2 && output[written - 2] != 0) {
                            failed = true
                            return
                        }
                        written -= padding
                        padding += 10  // anything more fails
                    }
                }
            }
        }
    }

    /// The decoded bytes, or nil when the text was not canonical base64. Consumes the decoder.
    mutating func finish() -> OwnedBytes? {
        if failed || pending != 0 {
            free(output)
            return nil
        }
        return OwnedBytes(taking: output, count: written)
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension Base64Strict {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Standard base64 with padding (RFC 4648 §4), as PHP's `base64_encode` writes it: the one
    /// spelling `decode` accepts, so `decode(encode(b)) == b` and a stored payload encodes back to
    /// the text that was signed.
    static func encode(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= bytes.count {
            let bits = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            out.append(alphabet[Int(bits >> 18 & 63)])
            out.append(alphabet[Int(bits >> 12 & 63)])
            out.append(alphabet[Int(bits >> 6 & 63)])
            out.append(alphabet[Int(bits & 63)])
            index += 3
        }
        let rest = bytes.count - index
        if rest > 0 {
            let bits = UInt32(bytes[index]) << 16 | (rest == 2 ? UInt32(bytes[index + 1]) << 8 : 0)
            out.append(alphabet[Int(bits >> 18 & 63)])
            out.append(alphabet[Int(bits >> 12 & 63)])
            out.append(rest == 2 ? alphabet[Int(bits >> 6 & 63)] : UInt8(ascii: "="))
            out.append(UInt8(ascii: "="))
        }
        return out
    }
}
