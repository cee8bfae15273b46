/// How a kept listing's signed payload is put back together (migration 7): the exact bytes
/// around and between its entries (the framing), and its entries as a list of `listing_entries`
/// row ids, written as runs. Pure: no database here.
///
/// The list is written as runs of two kinds: `ids` (entries `start, start+1, …`: entries first
/// seen in one listing are numbered in its order, so a first listing is one run), and `base`
/// (entries `start..<start+count` of another listing's list, its base). A night that changes a
/// few hundred entries of 200,000 is then a few hundred runs of a few bytes, where the list of
/// 32-byte hashes was 6.4 MB. The lists refer to entries by id, 1 to 3 bytes as a varint:
/// a `listing_entries` row (migration 7) or an entry of a deflated `listing_chunks` row
/// (migration 10, `ListingChunk`).
struct ListingLayout: Equatable {
    enum Run: Equatable {
        /// Entry ids `start, start+1, …, start+count-1`.
        case ids(start: Int64, count: Int)
        /// Positions `start..<start+count` of the base listing's entry list.
        case base(start: Int, count: Int)
    }

    enum Gaps: Equatable {
        /// The same bytes between every two entries (`,` from PHP's json_encode).
        case uniform([UInt8])
        /// Each gap as it was, for a listing that is not written uniformly.
        case each([[UInt8]])
    }

    struct Malformed: Error, Equatable {
        var message: String
    }

    /// Bytes of the whole payload, checked when it is rebuilt.
    var payloadLength: Int
    /// Everything before the first entry (or the whole payload when there is none).
    var prefix: [UInt8]
    var suffix: [UInt8]
    var gaps: Gaps
    var entryCount: Int
    var runs: [Run]

    static let formatVersion: UInt8 = 1

    /// The layout of `payload` whose entries lie at `entries` (in order, not overlapping),
    /// with the entry ids each has in `listing_entries`.
    static func make(payload: UnsafeBufferPointer<UInt8>, entries: [Range<Int>], ids: [Int64], base: [Int64]?)
        -> ListingLayout
    {
        precondition(entries.count == ids.count)
        let prefix: [UInt8]
        let suffix: [UInt8]
        var gapList: [[UInt8]] = []
        if let first = entries.first, let last = entries.last {
            prefix = Array(payload[0..<first.lowerBound])
            suffix = Array(payload[last.upperBound...])
            gapList.reserveCapacity(entries.count - 1)
            for number in 1..<max(1, entries.count) {
                gapList.append(Array(payload[entries[number - 1].upperBound..<entries[number].lowerBound]))
            }
        } else {
            prefix = Array(payload)
            suffix = []
        }
        let gaps: Gaps = gapList.allSatisfy({ $0 == gapList.first }) ? .uniform(gapList.first ?? []) : .each(gapList)
        return ListingLayout(
            payloadLength: payload.count, prefix: prefix, suffix: suffix, gaps: gaps,
            entryCount: ids.count, runs: runs(for: ids, base: base))
    }

    /// The runs that spell `ids`: at each position the longer of a copy from the base and a
    /// run of consecutive ids. Without a base, only id runs.
    static func runs(for ids: [Int64], base: [Int64]?) -> [Run] {
        var position: [Int64: Int] = [:]
        if let base {
            position.reserveCapacity(base.count)
            for (index, id) in base.enumerated().reversed() { position[id] = index }
        }
        var runs: [Run] = []
        var i = 0
        while i < ids.count {
            var copy = 0
            var copyStart = 0
            if let base, let j = position[ids[i]] {
                while i + copy < ids.count, j + copy < base.count, ids[i + copy] == base[j + copy] { copy += 1 }
                copyStart = j
            }
            var run = 1
            while i + run < ids.count, ids[i + run] == ids[i] &+ Int64(run) { run += 1 }
            if copy >= run {
                runs.append(.base(start: copyStart, count: copy))
                i += copy
            } else {
                runs.append(.ids(start: ids[i], count: run))
                i += run
            }
        }
        return runs
    }

    var usesBase: Bool {
        runs.contains { if case .base = $0 { true } else { false } }
    }

    /// The entry ids, in order. `base` is the base listing's list (needed when a run copies).
    func entryIDs(base: [Int64]?) throws(Malformed) -> [Int64] {
        var ids: [Int64] = []
        ids.reserveCapacity(entryCount)
        for run in runs {
            switch run {
            case .ids(let start, let count):
                guard count >= 0, count <= entryCount - ids.count else {
                    throw Malformed(message: "the entry list spells more than \(entryCount) entries")
                }
                for offset in 0..<count { ids.append(start + Int64(offset)) }
            case .base(let start, let count):
                guard let base, start >= 0, count >= 0, start + count <= base.count else {
                    throw Malformed(
                        message:
                            "the entry list copies entries \(start)..<\(start + count) of a base listing of \(base?.count ?? 0)"
                    )
                }
                ids.append(contentsOf: base[start..<(start + count)])
            }
        }
        guard ids.count == entryCount else {
            throw Malformed(message: "the entry list spells \(ids.count) entries, not \(entryCount)")
        }
        return ids
    }

    func gap(before number: Int) -> [UInt8] {
        switch gaps {
        case .uniform(let bytes): bytes
        case .each(let list): number - 1 < list.count ? list[number - 1] : []
        }
    }

    // MARK: - Bytes

    func encoded() -> [UInt8] {
        var out: [UInt8] = [Self.formatVersion]
        Self.put(&out, UInt64(payloadLength))
        Self.putBytes(&out, prefix)
        Self.putBytes(&out, suffix)
        switch gaps {
        case .uniform(let bytes):
            out.append(0)
            Self.putBytes(&out, bytes)
        case .each(let list):
            out.append(1)
            Self.put(&out, UInt64(list.count))
            for bytes in list { Self.putBytes(&out, bytes) }
        }
        Self.put(&out, UInt64(entryCount))
        Self.put(&out, UInt64(runs.count))
        for run in runs {
            switch run {
            case .ids(let start, let count):
                out.append(0)
                Self.put(&out, UInt64(bitPattern: start))
                Self.put(&out, UInt64(count))
            case .base(let start, let count):
                out.append(1)
                Self.put(&out, UInt64(start))
                Self.put(&out, UInt64(count))
            }
        }
        return out
    }

    static func decode(_ bytes: [UInt8]) throws(Malformed) -> ListingLayout {
        var reader = Reader(data: bytes)
        guard try reader.byte() == formatVersion else { throw Malformed(message: "unknown layout format") }
        let payloadLength = try reader.int()
        let prefix = try reader.bytes()
        let suffix = try reader.bytes()
        let gaps: Gaps
        switch try reader.byte() {
        case 0: gaps = .uniform(try reader.bytes())
        case 1:
            var list: [[UInt8]] = []
            for _ in 0..<(try reader.int()) { list.append(try reader.bytes()) }
            gaps = .each(list)
        default: throw Malformed(message: "unknown gap form")
        }
        let entryCount = try reader.int()
        var runs: [Run] = []
        for _ in 0..<(try reader.int()) {
            let kind = try reader.byte()
            let start = try reader.varint()
            let count = try reader.int()
            switch kind {
            case 0: runs.append(.ids(start: Int64(bitPattern: start), count: count))
            case 1:
                guard start <= UInt64(Int.max) else { throw Malformed(message: "a run is out of range") }
                runs.append(.base(start: Int(start), count: count))
            default: throw Malformed(message: "unknown run kind \(kind)")
            }
        }
        guard reader.offset == bytes.count else { throw Malformed(message: "trailing bytes") }
        return ListingLayout(
            payloadLength: payloadLength, prefix: prefix, suffix: suffix, gaps: gaps,
            entryCount: entryCount, runs: runs)
    }

    static func put(_ out: inout [UInt8], _ value: UInt64) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(value & 0x7f) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }

    private static func putBytes(_ out: inout [UInt8], _ bytes: [UInt8]) {
        put(&out, UInt64(bytes.count))
        out.append(contentsOf: bytes)
    }

    struct Reader {
        let data: [UInt8]
        var offset = 0

        mutating func byte() throws(Malformed) -> UInt8 {
            guard offset < data.count else { throw Malformed(message: "truncated") }
            defer { offset += 1 }
            return data[offset]
        }

        mutating func varint() throws(Malformed) -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let next = try byte()
                guard shift < 64 else { throw Malformed(message: "a number is too long") }
                value |= UInt64(next & 0x7f) << shift
                if next < 0x80 { return value }
                shift += 7
            }
        }

        mutating func int() throws(Malformed) -> Int {
            let value = try varint()
            guard value <= 1 << 40 else { throw Malformed(message: "a count is out of range") }
            return Int(value)
        }

        mutating func bytes() throws(Malformed) -> [UInt8] {
            let count = try int()
            guard count <= data.count - offset else { throw Malformed(message: "truncated") }
            defer { offset += count }
            return Array(data[offset..<(offset + count)])
        }
    }
}
