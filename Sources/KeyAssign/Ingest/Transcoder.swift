/// Decodes a stream in one of the `InputEncoding`s other than UTF-8 into UTF-8, chunk by
/// chunk, for `CSVReader` to parse as if the file had been UTF-8.
///
/// Why decode below the parser rather than parse each encoding: the parser's byte-level
/// state machine (and its speed) stays the UTF-8 one, and a UTF-8 file never passes through
/// here, so the fast path costs nothing. A code unit cut by a chunk edge (an odd byte, half
/// a surrogate pair) is carried to the next chunk.
///
/// A sequence that is not valid in the encoding (an unpaired surrogate, a UTF-32 value past
/// U+10FFFF, a last code unit cut short by the end of the file) becomes the byte 0xFF, which
/// never occurs in UTF-8: the row holding it fails its UTF-8 check and is recorded as invalid
/// ("not valid UTF-16LE"), instead of being queued with a guessed character.
final class Transcoder {
    let encoding: InputEncoding
    /// Raw bytes: `carry` left-over bytes first, then what the next read brings.
    let input: UnsafeMutablePointer<UInt8>
    let inputCapacity: Int
    private(set) var carry = 0

    /// UTF-8 bytes one input byte may become, at most: a Windows-1252 byte up to 3 (€ is
    /// E2 82 AC); two UTF-16 bytes 3; four bytes (a pair, or UTF-32) 4.
    static let maxExpansion = 3
    /// Slack for what the carried bytes and a replacement add.
    static let slack = 8

    init(encoding: InputEncoding, inputCapacity: Int) {
        precondition(encoding != .utf8, "UTF-8 is read directly")
        self.encoding = encoding
        self.inputCapacity = max(16, inputCapacity)
        input = .allocate(capacity: self.inputCapacity + 4)
    }

    deinit { input.deallocate() }

    /// Where the next raw bytes go, and how many fit.
    var readPointer: UnsafeMutablePointer<UInt8> { input + carry }

    /// How many raw bytes may be read when `room` output bytes are free.
    func readLimit(room: Int) -> Int {
        max(0, min(inputCapacity, (room - Self.slack) / Self.maxExpansion - carry))
    }

    /// Decodes the carried bytes plus `count` new ones into `out`; returns the bytes written.
    /// `out` must have room for `maxExpansion × (carry + count) + slack` bytes.
    func decode(newBytes count: Int, into out: UnsafeMutablePointer<UInt8>) -> Int {
        let total = carry + count
        var i = 0
        var o = 0
        switch encoding {
        case .utf8:
            preconditionFailure("UTF-8 is read directly")
        case .iso88591:
            while i < total {
                o += Self.put(UInt32(input[i]), out + o)
                i += 1
            }
        case .windows1252:
            while i < total {
                let b = input[i]
                let scalar = b >= 0x80 && b < 0xA0 ? UInt32(Self.cp1252High[Int(b - 0x80)]) : UInt32(b)
                o += Self.put(scalar, out + o)
                i += 1
            }
        case .utf16le, .utf16be:
            let little = encoding == .utf16le
            while i + 1 < total {
                let unit = unit16(i, little)
                if unit >= 0xD800 && unit < 0xDC00 {
                    // A high surrogate needs the low one after it.
                    guard i + 3 < total else { break }
                    let low = unit16(i + 2, little)
                    if low >= 0xDC00 && low < 0xE000 {
                        o += Self.put(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00), out + o)
                        i += 4
                    } else {
                        out[o] = 0xFF
                        o += 1
                        i += 2
                    }
                } else if unit >= 0xDC00 && unit < 0xE000 {
                    out[o] = 0xFF
                    o += 1
                    i += 2
                } else {
                    o += Self.put(unit, out + o)
                    i += 2
                }
            }
        case .utf32le, .utf32be:
            let little = encoding == .utf32le
            while i + 3 < total {
                let b0 = UInt32(input[i])
                let b1 = UInt32(input[i + 1])
                let b2 = UInt32(input[i + 2])
                let b3 = UInt32(input[i + 3])
                let scalar = little ? b0 | b1 << 8 | b2 << 16 | b3 << 24 : b3 | b2 << 8 | b1 << 16 | b0 << 24
                if scalar > 0x10FFFF || (scalar >= 0xD800 && scalar < 0xE000) {
                    out[o] = 0xFF
                    o += 1
                } else {
                    o += Self.put(scalar, out + o)
                }
                i += 4
            }
        }
        // The cut-off tail waits for the next chunk.
        carry = total - i
        if carry > 0 && i > 0 { (input).update(from: input + i, count: carry) }
        return o
    }

    /// At the end of the file: a code unit cut short is not valid text.
    func finish(into out: UnsafeMutablePointer<UInt8>) -> Int {
        guard carry > 0 else { return 0 }
        carry = 0
        out[0] = 0xFF
        return 1
    }

    @inline(__always)
    private func unit16(_ i: Int, _ little: Bool) -> UInt32 {
        little ? UInt32(input[i]) | UInt32(input[i + 1]) << 8 : UInt32(input[i]) << 8 | UInt32(input[i + 1])
    }

    /// Writes `scalar` as UTF-8; returns its length.
    @inline(__always)
    private static func put(_ scalar: UInt32, _ out: UnsafeMutablePointer<UInt8>) -> Int {
        if scalar < 0x80 {
            out[0] = UInt8(scalar)
            return 1
        }
        if scalar < 0x800 {
            out[0] = UInt8(0xC0 | scalar >> 6)
            out[1] = UInt8(0x80 | scalar & 0x3F)
            return 2
        }
        if scalar < 0x10000 {
            out[0] = UInt8(0xE0 | scalar >> 12)
            out[1] = UInt8(0x80 | (scalar >> 6) & 0x3F)
            out[2] = UInt8(0x80 | scalar & 0x3F)
            return 3
        }
        out[0] = UInt8(0xF0 | scalar >> 18)
        out[1] = UInt8(0x80 | (scalar >> 12) & 0x3F)
        out[2] = UInt8(0x80 | (scalar >> 6) & 0x3F)
        out[3] = UInt8(0x80 | scalar & 0x3F)
        return 4
    }

    /// Windows-1252's 0x80–0x9F. The five bytes it leaves undefined map to the C1 controls of
    /// the same value (as WHATWG's decoder does), which the row checks then refuse.
    static let cp1252High: [UInt16] = [
        0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D,
        0x017D, 0x008F,
        0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D,
        0x017E, 0x0178,
    ]
}
