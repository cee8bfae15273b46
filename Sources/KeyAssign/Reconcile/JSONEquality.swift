/// Whether two JSON texts denote the same value, as `JSONValue`'s `==` decides it (members in
/// any order, numbers by value, strings by their unescaped text), without building a tree of
/// either: the listing's unsigned `response` copy and its signed payload are each the whole
/// inventory.
///
/// The server writes both from the same array with the same encoder, so the texts are
/// normally byte for byte equal and one comparison of memory settles it. Otherwise objects and
/// arrays are taken apart member by member and element by element, and only small pieces are
/// parsed into values and compared.
enum JSONEquality {
    /// Pieces this small are compared as parsed values.
    static let smallPiece = 16 * 1024

    /// Both texts must be single JSON values (the caller has parsed `b` fully already).
    static func equal(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        (try? equalValues(a, b, depth: 0)) ?? false
    }

    private static func equalValues(
        _ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>,
        depth: Int
    ) throws(JSONParseError) -> Bool {
        if a.count == b.count, let x = a.baseAddress, let y = b.baseAddress, memcmp(x, y, a.count) == 0 {
            // Equal texts are equal values, provided they are valid: `b` was checked by its
            // parser, and so `a` with it.
            return true
        }
        if a.count <= smallPiece && b.count <= smallPiece {
            return try StrictJSONParser.parse(a) == StrictJSONParser.parse(b)
        }
        guard depth < JSONScanner.maximumDepth else { return false }
        var left = JSONScanner(a)
        var right = JSONScanner(b)
        let kind = left.peek()
        guard kind == right.peek() else { return false }
        switch kind {
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
        default:
            // A long string or number: parse both.
            return try StrictJSONParser.parse(a) == StrictJSONParser.parse(b)
        }
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
