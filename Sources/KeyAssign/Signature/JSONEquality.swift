/// Whether two JSON texts denote the same value (members in any order, numbers by value,
/// strings by their unescaped text), without building a tree of either: the check that a
/// signed payload equals the envelope's unsigned `response` copy, for replies and listings
/// alike. A listing's copy and payload are each the whole inventory.
///
/// The server writes both from the same array with the same encoder, so the texts are
/// normally byte for byte equal and one comparison of memory settles it. Otherwise objects and
/// arrays are taken apart member by member and element by element with `JSONScanner`, down to
/// strings, numbers and literals.
enum JSONEquality {
    /// Both texts must be single JSON values that `JSONScanner` accepts (the caller has read
    /// both already).
    static func equal(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        (try? equalValues(a, b, depth: 0)) ?? false
    }

    private static func equalValues(
        _ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>,
        depth: Int
    ) throws(JSONParseError) -> Bool {
        if a.count == b.count, let x = a.baseAddress, let y = b.baseAddress, memcmp(x, y, a.count) == 0 {
            // Equal texts are equal values, provided they are valid: the caller read both.
            return true
        }
        guard depth < JSONScanner.maximumDepth else { return false }
        var left = JSONScanner(a)
        var right = JSONScanner(b)
        // Numbers of either sign compare by value (`-0` is `0`); anything else by its first byte.
        func kind(_ byte: UInt8?) -> UInt8? {
            guard let byte else { return nil }
            return byte == UInt8(ascii: "-") || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                ? UInt8(ascii: "0") : byte
        }
        let first = kind(left.peek())
        guard first == kind(right.peek()) else { return false }
        switch first {
        case UInt8(ascii: "{")?:
            let x = try left.objectMembers()
            let y = try right.objectMembers()
            try left.expectEnd()
            try right.expectEnd()
            guard x.count == y.count else { return false }
            var others: [String: Range<Int>] = [:]
            for member in y { others[member.name] = member.value }
            for member in x {
                guard let other = others[member.name] else { return false }
                guard
                    try equalValues(
                        UnsafeBufferPointer(rebasing: a[member.value]),
                        UnsafeBufferPointer(rebasing: b[other]), depth: depth + 1)
                else { return false }
            }
            return true
        case UInt8(ascii: "[")?:
            try left.expect(UInt8(ascii: "["), "'['")
            try right.expect(UInt8(ascii: "["), "'['")
            let leftEmpty = left.consume(UInt8(ascii: "]"))
            let rightEmpty = right.consume(UInt8(ascii: "]"))
            guard leftEmpty == rightEmpty else { return false }
            if leftEmpty { return true }
            while true {
                let x = try left.skipValue(depth: depth + 1)
                let y = try right.skipValue(depth: depth + 1)
                guard
                    try equalValues(
                        UnsafeBufferPointer(rebasing: a[x]), UnsafeBufferPointer(rebasing: b[y]),
                        depth: depth + 1)
                else { return false }
                let leftMore = left.consume(UInt8(ascii: ","))
                let rightMore = right.consume(UInt8(ascii: ","))
                guard leftMore == rightMore else { return false }
                if !leftMore { break }
            }
            try left.expect(UInt8(ascii: "]"), "']'")
            try right.expect(UInt8(ascii: "]"), "']'")
            return true
        case UInt8(ascii: "\"")?:
            // Swift's String equality: canonically equivalent text is the same string, as
            // member names are the same name (`JSONScanner.MemberNames`).
            return try left.decodeString(try left.scanString()) == right.decodeString(try right.scanString())
        case UInt8(ascii: "0")?:
            let x = try left.scanNumber()
            let y = try right.scanNumber()
            return equalNumbers(
                UnsafeBufferPointer(rebasing: a[x.range]), x.isInteger, UnsafeBufferPointer(rebasing: b[y.range]),
                y.isInteger)
        default:
            // true, false, null: unequal texts (after the memcmp above, trimmed) are unequal.
            let x = try left.skipValue(depth: depth)
            let y = try right.skipValue(depth: depth)
            return a[x].elementsEqual(b[y])
        }
    }

    /// Numbers are equal when they denote the same number: integers by their digits (JSON
    /// allows no leading zeros, so equal digits are equal values, beyond Int64 too; `-0` is
    /// `0`), anything else by its Double value.
    private static func equalNumbers(
        _ a: UnsafeBufferPointer<UInt8>, _ aIsInteger: Bool, _ b: UnsafeBufferPointer<UInt8>, _ bIsInteger: Bool
    ) -> Bool {
        if aIsInteger && bIsInteger {
            func zero(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
                text.elementsEqual("0".utf8) || text.elementsEqual("-0".utf8)
            }
            return a.elementsEqual(b) || (zero(a) && zero(b))
        }
        guard let x = Double(String(decoding: a, as: UTF8.self)), let y = Double(String(decoding: b, as: UTF8.self))
        else { return false }
        return x == y
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
