/// Standard base64 (RFC 4648 §4) with padding, nothing else: no whitespace, no URL-safe
/// alphabet, no missing padding, no stray bits in the last character. The server's PHP
/// `base64_encode` never produces anything looser, and a signature has one spelling.
enum Base64Strict {
    private static let table: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(byte)] = UInt8(index)
        }
        return table
    }()

    static func decode<Bytes: Collection<UInt8>>(_ text: Bytes) -> [UInt8]? {
        let count = text.count
        guard count % 4 == 0 else { return nil }
        if count == 0 { return [] }
        var output: [UInt8] = []
        output.reserveCapacity(count / 4 * 3)
        var quad: (UInt32, Int) = (0, 0)
        var padding = 0
        for (offset, byte) in text.enumerated() {
            if byte == UInt8(ascii: "=") {
                // Padding only in the last two places, and nothing but padding after it.
                guard offset >= count - 2 else { return nil }
                padding += 1
                quad.0 <<= 6
                quad.1 += 1
            } else {
                let value = table[Int(byte)]
                guard value != 0xFF, padding == 0 else { return nil }
                quad.0 = quad.0 << 6 | UInt32(value)
                quad.1 += 1
            }
            if quad.1 == 4 {
                let bits = quad.0
                output.append(UInt8(truncatingIfNeeded: bits >> 16))
                output.append(UInt8(truncatingIfNeeded: bits >> 8))
                output.append(UInt8(truncatingIfNeeded: bits))
                quad = (0, 0)
            }
        }
        guard padding <= 2 else { return nil }
        if padding > 0 {
            // Bits beyond the last whole byte must be zero, or two spellings decode alike.
            let lastBytes = output.suffix(padding)
            guard lastBytes.allSatisfy({ $0 == 0 }) else { return nil }
            output.removeLast(padding)
        }
        return output
    }
}
