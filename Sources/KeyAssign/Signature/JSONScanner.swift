/// The one strict JSON reader, for replies and listings alike (docs/signatures.md, "One
/// verification core"). It walks JSON text in place, without building values: the key listing
/// is the whole inventory (a 200,000-key listing is ~140 MB with its base64 copy), and a tree of
/// Swift values for it would cost several times that; a reply is read the same way, so that a
/// text one path accepts is a text the other accepts. Strings and numbers come back as ranges
/// of the text; only the few values keyassign reads are decoded.
///
/// A signed reply must be read exactly one way, so it refuses duplicate member names (two
/// `response_base64` members would let a forger show one value to us and another to some other
/// parser), invalid UTF-8, lone surrogates, control characters in strings, bad escapes, bad
/// numbers, nesting deeper than `maximumDepth` containers and text after the value, keeps
/// numbers as their text so `800.0` or `1e3` is never taken for the integer 800, and never
/// traps on any input.
struct JSONScanner {
    /// Containers nested deeper than this are refused (a listing is 3 deep, a reply 2).
    static let maximumDepth = 32

    let bytes: UnsafeBufferPointer<UInt8>
    var position: Int

    init(_ bytes: UnsafeBufferPointer<UInt8>, position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    func error(_ reason: String) -> JSONParseError { JSONParseError(offset: position, reason: reason) }

    mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    /// The next byte after whitespace, not consumed.
    mutating func peek() -> UInt8? {
        skipWhitespace()
        return position < bytes.count ? bytes[position] : nil
    }

    mutating func expect(_ byte: UInt8, _ what: String) throws(JSONParseError) {
        guard peek() == byte else { throw error("expected \(what)") }
        position += 1
    }

    /// Consumes `byte` if it comes next (after whitespace).
    mutating func consume(_ byte: UInt8) -> Bool {
        guard peek() == byte else { return false }
        position += 1
        return true
    }

    /// A string at the current position: the range of its raw contents (between the quotes)
    /// and whether it holds escapes (then the raw bytes are not its value).
    mutating func scanString() throws(JSONParseError) -> (range: Range<Int>, escaped: Bool) {
        try expect(UInt8(ascii: "\""), "a string")
        let start = position
        var escaped = false
        while position < bytes.count {
            skipPlainWords()
            guard position < bytes.count else { break }
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                let range = start..<position
                position += 1
                return (range, escaped)
            }
            if byte < 0x20 { throw error("control character in a string") }
            if byte == UInt8(ascii: "\\") {
                escaped = true
                position += 1
                guard position < bytes.count else { break }
                switch bytes[position] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                    UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    position += 1
                case UInt8(ascii: "u"):
                    // A high surrogate must be followed by a low one, and a low one alone is refused.
                    let unit = try hex4(at: position + 1)
                    position += 5
                    if (0xDC00...0xDFFF).contains(unit) { throw error("lone surrogate in \\u escape") }
                    if (0xD800...0xDBFF).contains(unit) {
                        guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                            bytes[position + 1] == UInt8(ascii: "u"),
                            (0xDC00...0xDFFF).contains(try hex4(at: position + 2))
                        else {
                            throw error("lone surrogate in \\u escape")
                        }
                        position += 6
                    }
                default:
                    throw error("bad escape")
                }
                continue
            }
            if byte >= 0x80 {
                // A string is valid UTF-8, used or not.
                try skipUTF8Sequence()
                continue
            }
            position += 1
        }
        throw error("unterminated string")
    }

    private func hex4(at offset: Int) throws(JSONParseError) -> UInt32 {
        guard offset + 4 <= bytes.count else { throw error("short \\u escape") }
        var value: UInt32 = 0
        for index in offset..<(offset + 4) {
            let byte = bytes[index]
            guard byte.isHexDigit else { throw error("bad \\u escape") }
            let digit = byte <= UInt8(ascii: "9") ? byte - UInt8(ascii: "0") : (byte | 0x20) - UInt8(ascii: "a") + 10
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// One well-formed UTF-8 sequence (no overlong form, no surrogate, nothing past U+10FFFF).
    private mutating func skipUTF8Sequence() throws(JSONParseError) {
        let lead = bytes[position]
        let length: Int
        var lowest: UInt8 = 0x80
        var highest: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0:
            length = 3
            lowest = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED:
            length = 3
            highest = 0x9F
        case 0xF0:
            length = 4
            lowest = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4:
            length = 4
            highest = 0x8F
        default: throw error("string is not valid UTF-8")
        }
        guard position + length <= bytes.count else { throw error("string is not valid UTF-8") }
        let second = bytes[position + 1]
        guard second >= lowest && second <= highest else { throw error("string is not valid UTF-8") }
        for index in (position + 2)..<(position + length) where bytes[index] & 0xC0 != 0x80 {
            throw error("string is not valid UTF-8")
        }
        position += length
    }

    /// Skips whole 8-byte words of string text that hold no quote, backslash or control
    /// character: the listing's strings are long (its `response_base64` is one string of
    /// ~70 MB), and a byte at a time was most of the time spent scanning it.
    private mutating func skipPlainWords() {
        guard let base = bytes.baseAddress else { return }
        let raw = UnsafeRawPointer(base)
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        while position + 8 <= bytes.count {
            let word = raw.loadUnaligned(fromByteOffset: position, as: UInt64.self)
            let quote = word ^ (ones &* UInt64(UInt8(ascii: "\"")))
            let backslash = word ^ (ones &* UInt64(UInt8(ascii: "\\")))
            // A byte is zero, or below 0x20, exactly when the word has its borrow bit set
            // (the classic "has zero byte" / "has byte less than" tests).
            // Non-ASCII bytes (the high bit, `word` itself) stop the fast path too: they are
            // checked as UTF-8 one sequence at a time.
            let special =
                ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | ((word &- ones &* 0x20) & ~word)
                | word
            if special & highs != 0 { return }
            position += 8
        }
    }

    /// The value of a string scanned by `scanString`.
    func decodeString(_ scanned: (range: Range<Int>, escaped: Bool)) throws(JSONParseError) -> String {
        let range = scanned.range
        if !scanned.escaped {
            let slice = UnsafeBufferPointer(rebasing: bytes[range])
            guard let text = String(validating: slice, as: UTF8.self) else {
                throw JSONParseError(offset: range.lowerBound, reason: "invalid UTF-8 in a string")
            }
            return text
        }
        // scanString checked every escape and surrogate pair; this only undoes them.
        var utf8: [UInt8] = []
        utf8.reserveCapacity(range.count)
        var index = range.lowerBound
        while index < range.upperBound {
            let byte = bytes[index]
            index += 1
            guard byte == UInt8(ascii: "\\"), index < range.upperBound else {
                utf8.append(byte)
                continue
            }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var value = try hex4(at: index)
                index += 4
                if (0xD800...0xDBFF).contains(value) {
                    let low = try hex4(at: index + 2)
                    index += 6
                    value = 0x10000 + ((value - 0xD800) << 10) + (low &- 0xDC00)
                }
                guard let scalar = Unicode.Scalar(value) else {
                    throw JSONParseError(offset: index, reason: "lone surrogate in \\u escape")
                }
                utf8.append(contentsOf: String(Character(scalar)).utf8)
            default: utf8.append(escape)  // " \\ /
            }
        }
        guard let text = String(validating: utf8, as: UTF8.self) else {
            throw JSONParseError(offset: range.lowerBound, reason: "invalid UTF-8 in a string")
        }
        return text
    }

    /// Skips one value of any kind and returns the range of its text.
    @discardableResult
    mutating func skipValue(depth: Int = 0) throws(JSONParseError) -> Range<Int> {
        guard let first = peek() else { throw error("expected a value") }
        let start = position
        switch first {
        case UInt8(ascii: "\""):
            _ = try scanString()
        case UInt8(ascii: "{"):
            guard depth < Self.maximumDepth else { throw error("nesting too deep") }
            position += 1
            if !consume(UInt8(ascii: "}")) {
                // A name given twice is refused, at any depth.
                var names = MemberNames()
                repeat {
                    let name = try scanString()
                    if try !names.insert(name, of: self) {
                        throw JSONParseError(offset: name.range.lowerBound, reason: "duplicate member")
                    }
                    try expect(UInt8(ascii: ":"), "':'")
                    try skipValue(depth: depth + 1)
                } while consume(UInt8(ascii: ","))
                try expect(UInt8(ascii: "}"), "',' or '}'")
            }
        case UInt8(ascii: "["):
            guard depth < Self.maximumDepth else { throw error("nesting too deep") }
            position += 1
            if !consume(UInt8(ascii: "]")) {
                repeat {
                    try skipValue(depth: depth + 1)
                } while consume(UInt8(ascii: ","))
                try expect(UInt8(ascii: "]"), "',' or ']'")
            }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default:
            _ = try scanNumber()
        }
        return start..<position
    }

    /// True when the next value is `null` (consumed then).
    mutating func consumeNull() throws(JSONParseError) -> Bool {
        guard peek() == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    private mutating func literal(_ word: StaticString) throws(JSONParseError) {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw error("bad literal") }
        let text = word.utf8Start
        for offset in 0..<count where bytes[position + offset] != text[offset] { throw error("bad literal") }
        position += count
    }

    /// A number by JSON's grammar; returns its text and whether it is an integer.
    mutating func scanNumber() throws(JSONParseError) -> (range: Range<Int>, isInteger: Bool) {
        skipWhitespace()
        let start = position
        func digit(_ at: Int) -> Bool { at < bytes.count && bytes[at] >= 0x30 && bytes[at] <= 0x39 }
        if position < bytes.count && bytes[position] == UInt8(ascii: "-") { position += 1 }
        guard digit(position) else { throw error("expected a value") }
        if bytes[position] == UInt8(ascii: "0") {
            position += 1
        } else {
            while digit(position) { position += 1 }
        }
        var isInteger = true
        if position < bytes.count && bytes[position] == UInt8(ascii: ".") {
            isInteger = false
            position += 1
            guard digit(position) else { throw error("bad number") }
            while digit(position) { position += 1 }
        }
        if position < bytes.count && (bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E")) {
            isInteger = false
            position += 1
            if position < bytes.count && (bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-"))
            {
                position += 1
            }
            guard digit(position) else { throw error("bad number") }
            while digit(position) { position += 1 }
        }
        return (start..<position, isInteger)
    }

    /// The member names of one object seen so far: compared as text while they are few and
    /// plain ASCII (a listing entry has a dozen), as decoded strings otherwise (as `JSONEquality`
    /// compares strings); a set past a handful, so that a hostile object with a million
    /// members costs no more than a million lookups.
    struct MemberNames {
        private var plain: [Range<Int>] = []
        private var decoded: Set<String>?

        /// False when the name was there already.
        mutating func insert(_ name: (range: Range<Int>, escaped: Bool), of scanner: JSONScanner) throws(JSONParseError)
            -> Bool
        {
            let bytes = scanner.bytes
            let ascii = !name.escaped && bytes[name.range].allSatisfy { $0 < 0x80 }
            if decoded == nil && ascii && plain.count < 16 {
                for other in plain
                where other.count == name.range.count && bytes[other].elementsEqual(bytes[name.range]) {
                    return false
                }
                plain.append(name.range)
                return true
            }
            if decoded == nil {
                var set = Set<String>()
                for other in plain { set.insert(try scanner.decodeString((other, false))) }
                decoded = set
            }
            let text = try scanner.decodeString(name)
            return decoded?.insert(text).inserted ?? true
        }
    }

    /// Members of the object at the current position, as (name, value range), in order;
    /// a name given twice is refused (it would let two readers see two different values).
    mutating func objectMembers(depth: Int = 0) throws(JSONParseError) -> [(name: String, value: Range<Int>)] {
        try expect(UInt8(ascii: "{"), "an object")
        var members: [(name: String, value: Range<Int>)] = []
        var seen: Set<String> = []
        if consume(UInt8(ascii: "}")) { return members }
        repeat {
            let name = try decodeString(try scanString())
            guard seen.insert(name).inserted else {
                throw error("duplicate member \"\(TerminalText.escape(name, limit: 64))\"")
            }
            try expect(UInt8(ascii: ":"), "':'")
            members.append((name, try skipValue(depth: depth + 1)))
        } while consume(UInt8(ascii: ","))
        try expect(UInt8(ascii: "}"), "',' or '}'")
        return members
    }

    /// The end of the text: only whitespace may follow.
    mutating func expectEnd() throws(JSONParseError) {
        skipWhitespace()
        guard position == bytes.count else { throw error("text after the JSON value") }
    }
}

extension UInt8 {
    var isHexDigit: Bool {
        (self >= 0x30 && self <= 0x39) || (self >= 0x41 && self <= 0x46) || (self >= 0x61 && self <= 0x66)
    }
}
