import Testing

@testable import KeyAssign

/// `ListingLayout`: a listing's framing and entry list as runs, encoded and decoded, and a
/// hand-edited layout refused with a message rather than a crash.
@Suite struct ReconcileLayoutTests {
    static func payload(_ entries: [String], gap: String = ",") -> (bytes: [UInt8], ranges: [Range<Int>]) {
        var text = Array("{\"code\":730,\"license_keys\":[".utf8)
        var ranges: [Range<Int>] = []
        for (number, entry) in entries.enumerated() {
            if number > 0 { text += Array(gap.utf8) }
            ranges.append(text.count..<(text.count + entry.utf8.count))
            text += Array(entry.utf8)
        }
        text += Array("],\"timestamp\":1}".utf8)
        return (text, ranges)
    }

    @Test func aFirstListingIsOneRunAndALaterOneCopiesItsBase() throws {
        let first = Array(Int64(1)...1000)
        #expect(ListingLayout.runs(for: first, base: nil) == [.ids(start: 1, count: 1000)])
        // Two entries changed in place (new ids 1001, 1002), one appended (1003).
        var second = first
        second[10] = 1001
        second[500] = 1002
        second.append(1003)
        let runs = ListingLayout.runs(for: second, base: first)
        #expect(
            runs == [
                .base(start: 0, count: 10), .ids(start: 1001, count: 1), .base(start: 11, count: 489),
                .ids(start: 1002, count: 1), .base(start: 501, count: 499), .ids(start: 1003, count: 1),
            ])
        let (bytes, ranges) = Self.payload((0..<1001).map { "{\"k\":\($0)}" })
        let layout = bytes.withUnsafeBufferPointer {
            ListingLayout.make(payload: $0, entries: ranges, ids: second, base: first)
        }
        let decoded = try ListingLayout.decode(layout.encoded())
        #expect(decoded == layout)
        #expect(try decoded.entryIDs(base: first) == second)
        #expect(layout.encoded().count < 100, "\(layout.encoded().count) bytes")
        #expect(layout.gaps == .uniform(Array(",".utf8)))
        #expect(String(decoding: layout.prefix, as: UTF8.self) == "{\"code\":730,\"license_keys\":[")
    }

    @Test func gapsThatDifferAreKeptEachAndAnEmptyListIsAllPrefix() throws {
        var (bytes, ranges) = Self.payload(["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"], gap: ", ")
        // The second gap written differently: ",\n".
        let secondGap = ranges[1].upperBound
        bytes.replaceSubrange(secondGap..<(secondGap + 2), with: Array(",\n".utf8))
        let layout = bytes.withUnsafeBufferPointer {
            ListingLayout.make(payload: $0, entries: ranges, ids: [7, 8, 9], base: nil)
        }
        #expect(layout.gaps == .each([Array(", ".utf8), Array(",\n".utf8)]))
        #expect(try ListingLayout.decode(layout.encoded()) == layout)

        let empty = Array("{\"code\":730,\"license_keys\":[],\"timestamp\":1}".utf8)
        let none = empty.withUnsafeBufferPointer { ListingLayout.make(payload: $0, entries: [], ids: [], base: nil) }
        #expect(none.prefix == empty && none.suffix.isEmpty && none.runs.isEmpty)
        #expect(try ListingLayout.decode(none.encoded()).entryIDs(base: nil) == [])
    }

    @Test func aHandEditedLayoutIsRefusedNotACrash() throws {
        let (bytes, ranges) = Self.payload(["{\"a\":1}", "{\"b\":2}"])
        let layout = bytes.withUnsafeBufferPointer {
            ListingLayout.make(payload: $0, entries: ranges, ids: [1, 2], base: nil)
        }
        let encoded = layout.encoded()
        for cut in 0..<encoded.count {
            #expect(throws: ListingLayout.Malformed.self) { try ListingLayout.decode(Array(encoded.prefix(cut))) }
        }
        #expect(throws: ListingLayout.Malformed.self) { try ListingLayout.decode(encoded + [0]) }
        // Copies from a base it does not have, or beyond it; more entries than it says.
        var copying = layout
        copying.runs = [.base(start: 0, count: 2)]
        #expect(throws: ListingLayout.Malformed.self) { try copying.entryIDs(base: nil) }
        #expect(throws: ListingLayout.Malformed.self) { try copying.entryIDs(base: [5]) }
        var long = layout
        long.runs = [.ids(start: 1, count: 1 << 40)]
        #expect(throws: ListingLayout.Malformed.self) { try long.entryIDs(base: nil) }
    }
}
