/// Checks on one row's values, on raw bytes (no String is built for a valid row).
enum RowValidation {
    /// Field bounds (README "Limits"): keys are UUID-like, a few dozen bytes; 256 leaves room
    /// for any generator's format and refuses a cell that is plainly not a key.
    static let maxKeyBytes = 256
    static let maxEmailBytes = 254
    static let maxOwnerCharacters = 255

    enum FieldProblem: Equatable {
        case invalidUTF8(offset: Int)
        case controlCharacter(UInt32, offset: Int)
    }

    /// Invalid UTF-8 or a control character (C0, DEL, C1). With `allowLineBreaks`, tab, CR
    /// and LF pass: they are legitimate inside a quoted multi-line column that keyassign
    /// does not use (an address, a note), and refusing those rows would drop good sales.
    static func problem(in bytes: UnsafeRawBufferPointer, allowLineBreaks: Bool) -> FieldProblem? {
        let count = bytes.count
        guard count > 0, let p = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return nil }
        var i = 0
        while i < count {
            let b = p[i]
            if b < 0x80 {
                if b < 0x20 || b == 0x7F {
                    if !(allowLineBreaks && (b == 0x09 || b == 0x0A || b == 0x0D)) {
                        return .controlCharacter(UInt32(b), offset: i)
                    }
                }
                i += 1
                continue
            }
            // A multi-byte sequence: its length, the smallest scalar it may encode (no
            // overlong forms) and no surrogates or values past U+10FFFF.
            let length: Int
            var scalar: UInt32
            if b & 0xE0 == 0xC0 {
                length = 2
                scalar = UInt32(b & 0x1F)
            } else if b & 0xF0 == 0xE0 {
                length = 3
                scalar = UInt32(b & 0x0F)
            } else if b & 0xF8 == 0xF0 {
                length = 4
                scalar = UInt32(b & 0x07)
            } else {
                return .invalidUTF8(offset: i)
            }
            guard i + length <= count else { return .invalidUTF8(offset: i) }
            for k in 1..<length {
                let c = p[i + k]
                guard c & 0xC0 == 0x80 else { return .invalidUTF8(offset: i) }
                scalar = scalar << 6 | UInt32(c & 0x3F)
            }
            let minimum: UInt32 = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000
            guard scalar >= minimum, scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) else {
                return .invalidUTF8(offset: i)
            }
            if (0x80...0x9F).contains(scalar) { return .controlCharacter(scalar, offset: i) }
            i += length
        }
        return nil
    }

    @inline(__always)
    static func isSpace(_ b: UInt8) -> Bool {
        b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D || b == 0x0B || b == 0x0C
    }

    /// The bytes without leading and trailing ASCII whitespace.
    @inline(__always)
    static func trim(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        guard let base = bytes.baseAddress else { return bytes }
        var lo = 0
        var hi = bytes.count
        while lo < hi && isSpace(bytes[lo]) { lo += 1 }
        while hi > lo && isSpace(bytes[hi - 1]) { hi -= 1 }
        return UnsafeRawBufferPointer(start: base + lo, count: hi - lo)
    }

    /// Why an email is not plausible, or nil: one `@`, a non-empty local part, a domain with
    /// a dot (not at its ends), no whitespace, at most 254 bytes.
    static func emailProblem(_ email: UnsafeRawBufferPointer) -> String? {
        if email.count > maxEmailBytes { return "email longer than \(maxEmailBytes) bytes" }
        var at = -1
        for i in 0..<email.count {
            let b = email[i]
            if b == UInt8(ascii: "@") {
                if at >= 0 { return "email has more than one @" }
                at = i
            } else if isSpace(b) {
                return "email contains a space"
            }
        }
        if at < 0 { return "email has no @" }
        if at == 0 { return "email has an empty local part" }
        let domain = UnsafeRawBufferPointer(rebasing: email[(at + 1)...])
        let dot = UInt8(ascii: ".")
        if !domain.contains(dot) || domain.first == dot || domain.last == dot {
            return "email domain has no dot"
        }
        return nil
    }

    /// True when the name has more than 255 characters (user-perceived characters).
    static func ownerTooLong(_ name: UnsafeRawBufferPointer) -> Bool {
        // 255 characters take at least 255 bytes: only longer names need counting.
        guard name.count > maxOwnerCharacters else { return false }
        return String(decoding: name, as: UTF8.self).count > maxOwnerCharacters
    }

    /// `encoding`: what the file was decoded from; the decoder marks what is not valid in it
    /// with a byte that is not valid UTF-8.
    static func describe(_ problem: FieldProblem, column: String, encoding: InputEncoding = .utf8) -> String {
        switch problem {
        case .invalidUTF8(let offset):
            if encoding != .utf8 { return "text that is not valid \(encoding.displayName) in column \"\(column)\"" }
            return "invalid UTF-8 in column \"\(column)\" at byte \(offset + 1) (is the file UTF-8? see --encoding)"
        case .controlCharacter(let scalar, let offset):
            let hex = String(scalar, radix: 16, uppercase: true)
            return
                "control character U+\(String(repeating: "0", count: max(0, 4 - hex.count)) + hex) in column \"\(column)\" at byte \(offset + 1)"
        }
    }
}
