/// Finds a secret (the API key) in text from outside — a reply body, an error message — in
/// any of the forms a server might echo it back in, and replaces each occurrence.
///
/// A debug page does not print the key only as sent: it HTML-escapes it, shows the raw
/// form-encoded body, dumps the request as JSON, sometimes all three. So each character of
/// the secret may appear as itself (ASCII letters in either case), percent-encoded (`%2F`,
/// `%2f`; `+` for a space), JSON-escaped (`\/`, `\"`, `\u00e9`, surrogate pairs) or as an
/// HTML character reference (`&amp;`, `&#47;`, `&#x2F;`), mixed freely, and the `%`, `\` or
/// `&` that starts an escape may itself be escaped once more (`%252F`, `\&quot;`,
/// `&amp;quot;`). Matching walks all these spellings at once (a small NFA over end
/// positions), so it is linear in the text for a given secret, and never decodes the text.
///
/// Then the secret's binary-to-text encodings (`EncodedSecretForms`: base64, standard and
/// URL-safe, at any alignment; hex in either case) are replaced too. Every text a server
/// sends goes through one redactor, whichever call it answered: the assign replies
/// (`ReplyRedaction`) and the key listing (`ListingClient`, `Reconciler`).
struct SecretRedactor: Sendable {
    static let marker: [UInt8] = Array("[REDACTED: API key]".utf8)

    private let scalars: [Unicode.Scalar]
    /// Bytes that can begin some spelling of the secret's first character, and of its second.
    private let startBytes: [Bool]
    private let secondBytes: [Bool]
    private let encoded: EncodedSecretForms?
    /// How often an escape's introducer may itself be escaped.
    private static let maximumDepth = 2

    /// nil for an empty secret: there is nothing to hide, and an empty pattern matches everywhere.
    init?(secret: String) {
        scalars = Array(secret.unicodeScalars)
        guard let first = scalars.first else { return nil }
        startBytes = Self.possibleFirstBytes(first)
        // Only an ASCII first character is one byte long when not escaped; and a one-character
        // secret has no second character: then any byte may follow.
        secondBytes =
            scalars.count > 1 && first.isASCII
            ? Self.possibleFirstBytes(scalars[1])
            : [Bool](repeating: true, count: 256)
        encoded = EncodedSecretForms(secret: Array(secret.utf8))
    }

    private static func possibleFirstBytes(_ scalar: Unicode.Scalar) -> [Bool] {
        var bytes = [Bool](repeating: false, count: 256)
        for byte in scalar.utf8.prefix(1) { bytes[Int(byte)] = true }
        if let ascii = asciiLetter(scalar) {
            bytes[Int(ascii | 0x20)] = true
            bytes[Int(ascii & ~0x20)] = true
        }
        if scalar == " " { bytes[Int(UInt8(ascii: "+"))] = true }
        for introducer in ["%", "\\", "&"] as [Unicode.Scalar] { bytes[Int(introducer.value)] = true }
        return bytes
    }

    /// The text with every occurrence replaced by `marker`, and how many there were.
    func redact(_ bytes: [UInt8]) -> (bytes: [UInt8], occurrences: Int) {
        let spelled = redactSpellings(bytes)
        guard let encoded else { return spelled }
        let (out, occurrences) = encoded.redact(spelled.bytes, marker: Self.marker)
        return (out, spelled.occurrences + occurrences)
    }

    /// The secret as itself and in its escaped spellings.
    private func redactSpellings(_ bytes: [UInt8]) -> (bytes: [UInt8], occurrences: Int) {
        bytes.withUnsafeBufferPointer { text in
            var out: [UInt8] = []
            var occurrences = 0
            var copiedUpTo = 0
            var position = 0
            while position < text.count {
                // Most candidates fail on their first or second byte: test those before the search.
                let byte = text[position]
                guard startBytes[Int(byte)],
                    isIntroducer(byte) || position + 1 >= text.count || secondBytes[Int(text[position + 1])],
                    let end = matchEnd(in: text, at: position)
                else {
                    position += 1
                    continue
                }
                if occurrences == 0 { out.reserveCapacity(text.count) }
                out.append(contentsOf: text[copiedUpTo..<position])
                out.append(contentsOf: Self.marker)
                occurrences += 1
                position = end
                copiedUpTo = end
            }
            if occurrences == 0 { return (bytes, 0) }
            out.append(contentsOf: text[copiedUpTo..<text.count])
            return (out, occurrences)
        }
    }

    /// Whether `text` holds the secret in any spelling or encoding: for text too large to copy
    /// (a signed listing), which is refused rather than redacted.
    func occurs(in text: UnsafeBufferPointer<UInt8>) -> Bool {
        var position = 0
        while position < text.count {
            let byte = text[position]
            if startBytes[Int(byte)],
                isIntroducer(byte) || position + 1 >= text.count || secondBytes[Int(text[position + 1])],
                matchEnd(in: text, at: position) != nil
            {
                return true
            }
            position += 1
        }
        return encoded?.occurs(in: text) ?? false
    }

    func redact(_ text: String) -> String {
        let (bytes, occurrences) = redact(Array(text.utf8))
        return occurrences == 0 ? text : String(decoding: bytes, as: UTF8.self)
    }

    /// The end of the longest spelling of the whole secret starting at `position`, if any.
    private func matchEnd(in text: UnsafeBufferPointer<UInt8>, at position: Int) -> Int? {
        var current = [position]
        var next: [Int] = []
        for scalar in scalars {
            next.removeAll(keepingCapacity: true)
            for at in current {
                Self.spellings(of: scalar, in: text, at: at, depth: Self.maximumDepth, into: &next)
            }
            if next.isEmpty { return nil }
            swap(&current, &next)
            if current.count > 1 { current = Array(Set(current)) }
        }
        return current.max()
    }

    /// Appends to `ends` the end of every spelling of `scalar` that starts at `at`.
    private static func spellings(
        of scalar: Unicode.Scalar, in text: UnsafeBufferPointer<UInt8>, at: Int,
        depth: Int, into ends: inout [Int]
    ) {
        guard at < text.count else { return }
        let utf8 = scalar.utf8
        // As itself; ASCII letters in either case (a hex-looking key may be upper-cased).
        if let letter = asciiLetter(scalar) {
            if text[at] | 0x20 == letter | 0x20 { ends.append(at + 1) }
        } else if scalar.isASCII {
            if text[at] == UInt8(scalar.value) { ends.append(at + 1) }
        } else if text.count - at >= utf8.count, zip(text[at...], utf8).allSatisfy({ $0 == $1 }) {
            ends.append(at + utf8.count)
        }
        if scalar == " ", text[at] == UInt8(ascii: "+") { ends.append(at + 1) }
        // Every other spelling starts with an escape's introducer (or, within a multi-byte
        // character, its first byte): most positions end here, after one comparison.
        let first = text[at]
        guard isIntroducer(first) || (utf8.count > 1 && first == utf8.first) else { return }
        // Cheap cases first: `\/` (a reply envelope has dozens) can only be a `/`.
        switch escapeShape(in: text, at: at) {
        case .none: if utf8.count == 1 { return }
        case .simple(let value, let end):
            if value == scalar.value { ends.append(end) }
            return
        case .nested: break
        }
        // Percent-encoded (form and URL encoding): each UTF-8 byte as %XX, or, within a
        // multi-byte character, as itself.
        var positions = [at]
        for byte in utf8 where !positions.isEmpty {
            var advanced: [Int] = []
            for start in positions {
                if utf8.count > 1, start < text.count, text[start] == byte { advanced.append(start + 1) }
                for afterPercent in introducer(UInt8(ascii: "%"), in: text, at: start, depth: depth)
                where hexValue(in: text, at: afterPercent, digits: 2) == UInt32(byte) {
                    advanced.append(afterPercent + 2)
                }
            }
            positions = advanced
        }
        ends.append(contentsOf: positions)
        // JSON escapes.
        let value = scalar.value
        for afterBackslash in introducer(UInt8(ascii: "\\"), in: text, at: at, depth: depth) {
            guard afterBackslash < text.count else { continue }
            let escaped = text[afterBackslash]
            switch scalar {
            case "\"", "\\", "/":
                // `\&quot;` (JSON then HTML) as well as `\"`.
                if depth > 0 {
                    spellings(of: scalar, in: text, at: afterBackslash, depth: depth - 1, into: &ends)
                } else if escaped == UInt8(scalar.value) {
                    ends.append(afterBackslash + 1)
                }
            case "\u{08}": if escaped == UInt8(ascii: "b") { ends.append(afterBackslash + 1) }
            case "\u{0C}": if escaped == UInt8(ascii: "f") { ends.append(afterBackslash + 1) }
            case "\n": if escaped == UInt8(ascii: "n") { ends.append(afterBackslash + 1) }
            case "\r": if escaped == UInt8(ascii: "r") { ends.append(afterBackslash + 1) }
            case "\t": if escaped == UInt8(ascii: "t") { ends.append(afterBackslash + 1) }
            default: break
            }
            guard escaped | 0x20 == UInt8(ascii: "u") else { continue }
            if value <= 0xFFFF {
                if hexValue(in: text, at: afterBackslash + 1, digits: 4) == value { ends.append(afterBackslash + 5) }
            } else {
                let high = 0xD800 + ((value - 0x10000) >> 10)
                let low = 0xDC00 + ((value - 0x10000) & 0x3FF)
                let second = afterBackslash + 5
                if hexValue(in: text, at: afterBackslash + 1, digits: 4) == high,
                    second + 6 <= text.count, text[second] == UInt8(ascii: "\\"),
                    text[second + 1] | 0x20 == UInt8(ascii: "u"),
                    hexValue(in: text, at: second + 2, digits: 4) == low
                {
                    ends.append(second + 6)
                }
            }
        }
        // HTML character references.
        for afterAmpersand in introducer(UInt8(ascii: "&"), in: text, at: at, depth: depth) {
            if let end = characterReferenceEnd(in: text, at: afterAmpersand, matching: scalar) { ends.append(end) }
        }
    }

    /// Where the text continues after `byte` written at `at`: as itself, or (below the
    /// depth limit) in any spelling of it.
    private static func introducer(_ byte: UInt8, in text: UnsafeBufferPointer<UInt8>, at: Int, depth: Int) -> [Int] {
        guard at < text.count else { return [] }
        // Only an introducer can start a spelling other than the byte itself.
        if depth == 0 || !isIntroducer(text[at]) { return text[at] == byte ? [at + 1] : [] }
        switch escapeShape(in: text, at: at) {
        case .none: return text[at] == byte ? [at + 1] : []
        case .simple(let value, let end):
            return (text[at] == byte ? [at + 1] : []) + (value == UInt32(byte) ? [end] : [])
        case .nested: break
        }
        var ends: [Int] = []
        spellings(of: Unicode.Scalar(byte), in: text, at: at, depth: depth - 1, into: &ends)
        return ends
    }

    /// `#DDD;`, `#xHH;` or a named reference for the five characters HTML escapes.
    private static func characterReferenceEnd(
        in text: UnsafeBufferPointer<UInt8>, at: Int,
        matching scalar: Unicode.Scalar
    ) -> Int? {
        guard at < text.count else { return nil }
        if text[at] == UInt8(ascii: "#") {
            var position = at + 1
            let hex = position < text.count && text[position] | 0x20 == UInt8(ascii: "x")
            if hex { position += 1 }
            var value: UInt32 = 0
            var digits = 0
            while position < text.count, digits < 8 {
                let byte = text[position]
                let digit: UInt32?
                if hex {
                    digit = hexDigit(byte)
                } else {
                    digit = byte >= 0x30 && byte <= 0x39 ? UInt32(byte - 0x30) : nil
                }
                guard let digit else { break }
                value = value * (hex ? 16 : 10) + digit
                digits += 1
                position += 1
            }
            guard digits > 0, position < text.count, text[position] == UInt8(ascii: ";"), value == scalar.value else {
                return nil
            }
            return position + 1
        }
        let name: String
        switch scalar {
        case "&": name = "amp;"
        case "<": name = "lt;"
        case ">": name = "gt;"
        case "\"": name = "quot;"
        case "'": name = "apos;"
        default: return nil
        }
        let bytes = Array(name.utf8)
        guard text.count - at >= bytes.count,
            bytes.indices.allSatisfy({ text[at + $0] | 0x20 == bytes[$0] | 0x20 })
        else { return nil }
        return at + bytes.count
    }

    private enum EscapeShape {
        /// Not an escape: only the byte itself.
        case none
        /// An escape that can mean one thing only (`\/`, `\n`, …), and where it ends.
        case simple(UInt32, Int)
        /// Possibly an escape, perhaps of an escape: look closer.
        case nested
    }

    /// A glance at the bytes after an introducer, so that the full search runs only where
    /// an escape can really start.
    private static func escapeShape(in text: UnsafeBufferPointer<UInt8>, at: Int) -> EscapeShape {
        guard at + 1 < text.count else { return .none }
        let next = text[at + 1]
        switch text[at] {
        case UInt8(ascii: "%"):
            return hexDigit(next) != nil ? .nested : .none
        case UInt8(ascii: "\\"):
            switch next {
            case UInt8(ascii: "/"), UInt8(ascii: "\""): return .simple(UInt32(next), at + 2)
            case UInt8(ascii: "b"): return .simple(0x08, at + 2)
            case UInt8(ascii: "f"): return .simple(0x0C, at + 2)
            case UInt8(ascii: "n"): return .simple(0x0A, at + 2)
            case UInt8(ascii: "r"): return .simple(0x0D, at + 2)
            case UInt8(ascii: "t"): return .simple(0x09, at + 2)
            case UInt8(ascii: "u"), UInt8(ascii: "U"), UInt8(ascii: "\\"), UInt8(ascii: "&"), UInt8(ascii: "%"):
                return .nested
            default: return .none
            }
        case UInt8(ascii: "&"):
            return next == UInt8(ascii: "#") || asciiLetter(Unicode.Scalar(next)) != nil ? .nested : .none
        default:
            return .none
        }
    }

    private func isIntroducer(_ byte: UInt8) -> Bool { Self.isIntroducer(byte) }

    private static func isIntroducer(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "%") || byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "&")
    }

    private static func hexValue(in text: UnsafeBufferPointer<UInt8>, at: Int, digits: Int) -> UInt32? {
        guard at >= 0, text.count - at >= digits else { return nil }
        var value: UInt32 = 0
        for offset in 0..<digits {
            guard let digit = hexDigit(text[at + offset]) else { return nil }
            value = value << 4 | digit
        }
        return value
    }

    private static func hexDigit(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    private static func asciiLetter(_ scalar: Unicode.Scalar) -> UInt8? {
        guard scalar.isASCII else { return nil }
        let byte = UInt8(scalar.value)
        return (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z") ? byte : nil
    }
}
