import CZlib

/// Entries first kept with one listing, deflated together (zlib) as one `listing_chunks` row
/// (migration 10). A listing's entries are JSON objects alike but for a key, an id and an
/// owner: deflated in groups they take ~27 B each instead of ~280–330 B (docs/benchmarks.md,
/// "Years of nights"). Grouped, not one by one, so that a rebuild inflates each chunk once.
///
/// Inflated, a chunk is: the entry count, then per entry its id's step from the one before
/// (the first from `first_entry`: 0) and its length, all varints; then the entries' bytes,
/// back to back. Ids are steps rather than implied so that `prune` can drop the entries no
/// kept listing uses from a chunk without renumbering the rest.
final class ListingChunk {
    /// At most this many entries in a chunk: a first listing of 200,000 is ~200 chunks of
    /// ~280 kB inflated, a usual night's few hundred new entries one.
    static let maxEntries = 1024
    /// zlib's level: 6 (its default) keeps a first listing ~10 % smaller than 1, for a store
    /// measured in docs/benchmarks.md.
    static let level: Int32 = 6

    let firstEntry: Int64
    let ids: [Int64]
    /// Entry `i` lies at `starts[i]..<starts[i + 1]` of `memory`.
    private let starts: [Int]
    private let memory: UnsafeMutableRawBufferPointer
    /// Ids `firstEntry, firstEntry + 1, …` (every chunk until `prune` thins it): found by
    /// subtraction, not a search.
    private let isDense: Bool

    /// Takes `memory` (freed with the chunk).
    init(firstEntry: Int64, ids: [Int64], starts: [Int], memory: UnsafeMutableRawBufferPointer) {
        self.firstEntry = firstEntry
        self.ids = ids
        self.starts = starts
        self.memory = memory
        isDense = ids.isEmpty || ids[ids.count - 1] - firstEntry == Int64(ids.count - 1)
    }

    deinit { memory.deallocate() }

    var count: Int { ids.count }

    /// Entry `index`'s bytes, valid while the chunk lives.
    func entry(_ index: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: memory[starts[index]..<starts[index + 1]])
    }

    /// Where entry `id` is in this chunk, if it is.
    func index(of id: Int64) -> Int? {
        if isDense {
            let offset = id &- firstEntry
            return offset >= 0 && offset < Int64(ids.count) ? Int(offset) : nil
        }
        var low = 0
        var high = ids.count
        while low < high {
            let middle = (low + high) / 2
            if ids[middle] < id { low = middle + 1 } else { high = middle }
        }
        return low < ids.count && ids[low] == id ? low : nil
    }

    struct Encoded {
        var firstEntry: Int64
        var lastEntry: Int64
        var entries: Int
        var inflatedBytes: Int
        var body: [UInt8]
        /// The `digests` column (`EntryDigest.encode`).
        var digests: [UInt8]
    }

    /// Writes the chunk as a `listing_chunks` row: the one INSERT that storing a listing and
    /// `prune`'s rewrite of a thinned chunk share.
    static func insert(_ chunk: Encoded, in db: Database) throws {
        let insert = try db.prepare(
            """
            INSERT INTO listing_chunks (first_entry, last_entry, entries, bytes, body, digests)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6)
            """)
        try insert.bind(1, chunk.firstEntry)
        try insert.bind(2, chunk.lastEntry)
        try insert.bind(3, Int64(chunk.entries))
        try insert.bind(4, Int64(chunk.inflatedBytes))
        try insert.bindBlob(5, chunk.body)
        try insert.bindBlob(6, chunk.digests)
        try insert.step()
    }

    /// Deflates the entries `entry(i)` for `ids` (ascending), and digests each.
    static func encode(ids: [Int64], digester: EntryDigest.Maker, entry: (Int) -> UnsafeRawBufferPointer) throws
        -> Encoded
    {
        precondition(!ids.isEmpty)
        var plain: [UInt8] = []
        var total = 0
        for index in ids.indices { total += entry(index).count }
        plain.reserveCapacity(total + ids.count * 4 + 8)
        ListingLayout.put(&plain, UInt64(ids.count))
        var previous = ids[0]
        for index in ids.indices {
            precondition(ids[index] >= previous)
            ListingLayout.put(&plain, UInt64(ids[index] - previous))
            ListingLayout.put(&plain, UInt64(entry(index).count))
            previous = ids[index]
        }
        for index in ids.indices { plain.append(contentsOf: entry(index)) }
        var length = compressBound(uLong(plain.count))
        var body = [UInt8](repeating: 0, count: Int(length))
        let rc = body.withUnsafeMutableBufferPointer { out in
            plain.withUnsafeBufferPointer { input in
                compress2(out.baseAddress, &length, input.baseAddress, uLong(input.count), level)
            }
        }
        guard rc == Z_OK else { throw KeyAssignError(.ioError, "zlib: deflating \(ids.count) entries failed (\(rc))") }
        body.removeLast(body.count - Int(length))
        let digests = try ids.indices.map { try digester.digest(entry($0)) }
        return Encoded(
            firstEntry: ids[0], lastEntry: ids[ids.count - 1], entries: ids.count, inflatedBytes: plain.count,
            body: body,
            digests: EntryDigest.encode(ids: ids, digests: digests))
    }

    /// Inflates a chunk read back; anything that does not add up (an edited row) is `Malformed`.
    static func decode(firstEntry: Int64, inflatedBytes: Int, body: UnsafeRawBufferPointer) throws(ListingLayout
        .Malformed) -> ListingChunk
    {
        guard inflatedBytes >= 1, inflatedBytes <= 1 << 31 else {
            throw ListingLayout.Malformed(message: "chunk \(firstEntry) says it inflates to \(inflatedBytes) bytes")
        }
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: inflatedBytes, alignment: 8)
        var owned = true
        defer { if owned { memory.deallocate() } }
        var length = uLong(inflatedBytes)
        let rc = uncompress(
            memory.baseAddress?.assumingMemoryBound(to: UInt8.self), &length,
            body.baseAddress?.assumingMemoryBound(to: UInt8.self), uLong(body.count))
        guard rc == Z_OK, Int(length) == inflatedBytes else {
            throw ListingLayout.Malformed(message: "chunk \(firstEntry) does not inflate (zlib \(rc))")
        }
        var offset = 0
        func number() throws(ListingLayout.Malformed) -> Int {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard offset < inflatedBytes, shift < 42 else {
                    throw ListingLayout.Malformed(message: "chunk \(firstEntry): a number is cut or too long")
                }
                let byte = memory[offset]
                offset += 1
                value |= UInt64(byte & 0x7f) << shift
                if byte < 0x80 { return Int(value) }
                shift += 7
            }
        }
        let count = try number()
        guard count >= 1, count <= maxEntries * 64 else {
            throw ListingLayout.Malformed(message: "chunk \(firstEntry) holds \(count) entries")
        }
        var ids: [Int64] = []
        var lengths: [Int] = []
        ids.reserveCapacity(count)
        lengths.reserveCapacity(count)
        var id = firstEntry
        for _ in 0..<count {
            id += Int64(try number())
            ids.append(id)
            lengths.append(try number())
        }
        var starts: [Int] = []
        starts.reserveCapacity(count + 1)
        var position = offset
        for length in lengths {
            guard length <= inflatedBytes - position else {
                throw ListingLayout.Malformed(message: "chunk \(firstEntry) is shorter than its entries")
            }
            starts.append(position)
            position += length
        }
        guard position == inflatedBytes else {
            throw ListingLayout.Malformed(message: "chunk \(firstEntry) has trailing bytes")
        }
        starts.append(position)
        owned = false
        return ListingChunk(firstEntry: firstEntry, ids: ids, starts: starts, memory: memory)
    }
}
