import CSQLite

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Keeps verified key listings so that the nights do not each add a whole listing (issue 21):
/// every distinct entry once, and each listing as a `ListingLayout` over them, written against
/// the last kept listing. Entries are deflated in chunks (`listing_chunks`, `ListingChunk`,
/// migration 10); those kept before (migration 7) stay in `listing_entries`, as they were, and
/// are read from there. The signed payload is rebuilt byte for byte from these, and its
/// signature verifies again (`audit`).
///
/// A layout copies from its base, which may copy from its own: at most `maxDepth` links, so
/// that rebuilding any one listing reads at most that many small layouts. `audit` walks the
/// listings in order and keeps the last entry list (`Reader`), so each costs one step.
enum ListingArchive {
    /// Links from a standalone layout; the next is standalone again (a few kB to ~1 MB for
    /// 200,000 entries, depending on how scattered the changes since the first listing are).
    static let maxDepth = 30

    /// Stores the listing; returns its id. Runs in the caller's transaction.
    static func store(_ fetched: Reconciler.Fetched, server: String, in db: Database) throws -> Int64 {
        let listing = fetched.listing
        let index = listing.index
        let payload = index.payload.buffer
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(index.slots.count)
        for slot in index.slots {
            let start = Int(slot.object.start)
            ranges.append(start..<(start + Int(slot.object.count)))
        }
        // The last kept listing: its entry list is the base of this one's layout unless its
        // chain is long enough.
        var last: (id: Int64, depth: Int?, ids: [Int64])?
        let lastKept = try db.prepare(
            """
            SELECT id, layout_depth FROM listings WHERE layout IS NOT NULL AND pruned_at IS NULL ORDER BY id DESC LIMIT 1
            """)
        if try lastKept.step() {
            let id = lastKept.int(0)
            let depth: Int? = lastKept.isNull(1) ? nil : Int(lastKept.int(1))
            lastKept.reset()
            var reader = Reader(db)
            // A last listing that cannot be read back (edited by hand: `audit` says so) is not
            // copied from; this listing's list stands alone.
            do {
                last = (id, depth, try reader.entryIDs(listing: id))
            } catch is ListingLayout.Malformed {
                last = nil
            }
        }
        lastKept.reset()
        let ids = try entryIDs(payload, ranges, in: db)
        var base: (id: Int64, depth: Int, ids: [Int64])?
        if let last, let depth = last.depth, depth < maxDepth { base = (last.id, depth, last.ids) }
        var layout = ListingLayout.make(payload: payload, entries: ranges, ids: ids, base: base?.ids)
        var baseID: Int64? = base?.id
        var depth = (base?.depth ?? -1) + 1
        if base != nil {
            // A copy is worth its link only when it is no larger than standing alone.
            var alone = layout
            alone.runs = ListingLayout.runs(for: ids, base: nil)
            if !layout.usesBase || alone.encoded().count < layout.encoded().count {
                layout = alone
                baseID = nil
                depth = 0
            }
        }
        let insert = try db.prepare(
            """
            INSERT INTO listings (server, fetched_at, signed_at, key_name, entries, bytes, body, signature,
                                  layout, base_id, layout_depth)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, x'', ?7, ?8, ?9, ?10)
            """)
        try insert.bind(1, server)
        try insert.bind(2, Timestamps.iso8601(fetched.fetchedAt))
        try insert.bind(3, listing.timestamp)
        try insert.bind(4, listing.keyName)
        try insert.bind(5, Int64(index.count))
        try insert.bind(6, Int64(fetched.bytes))
        try insert.bind(7, listing.signature)
        try insert.bindBlob(8, layout.encoded())
        try insert.bind(9, baseID)
        try insert.bind(10, Int64(depth))
        try insert.step()
        insert.reset()
        return db.lastInsertRowID
    }

    /// Each entry's id. An entry kept before (by any listing still kept) keeps its id, found
    /// by its digest (`EntryDigest`) among the kept entries' digests, which are read, not
    /// inflated; the others (a few hundred on a usual night, all of a first listing) get the
    /// next ids in listing order and are written deflated, `ListingChunk.maxEntries` to a chunk.
    private static func entryIDs(_ payload: UnsafeBufferPointer<UInt8>, _ ranges: [Range<Int>], in db: Database)
        throws -> [Int64]
    {
        var ids = [Int64](repeating: 0, count: ranges.count)
        var fresh: [Int] = []
        func entry(_ number: Int) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(payload)[ranges[number]])
        }
        let digester = try EntryDigest.Maker()
        let known = try keptDigests(in: db)
        if known.isEmpty {
            fresh = Array(ranges.indices)
        } else {
            for number in ranges.indices {
                if let id = known[try digester.digest(entry(number))] {
                    ids[number] = id
                } else {
                    fresh.append(number)
                }
            }
        }
        guard !fresh.isEmpty else { return ids }
        let next =
            max(
                try db.scalarInt("SELECT coalesce(max(id), 0) FROM listing_entries") ?? 0,
                try db.scalarInt("SELECT coalesce(max(last_entry), 0) FROM listing_chunks") ?? 0) + 1
        for (offset, number) in fresh.enumerated() { ids[number] = next + Int64(offset) }
        var start = 0
        while start < fresh.count {
            let group = Array(fresh[start..<min(fresh.count, start + ListingChunk.maxEntries)])
            let chunk = try ListingChunk.encode(ids: group.map { ids[$0] }, digester: digester) { entry(group[$0]) }
            try ListingChunk.insert(chunk, in: db)
            start += group.count
        }
        return ids
    }

    /// Every kept entry's digest and id: the chunks' `digests`, and for entries kept before
    /// migration 10 the first 16 bytes of their SHA-256. A chunk whose digests do not read
    /// (edited by hand) is left out: its entries, if this listing has them, are kept again.
    private static func keptDigests(in db: Database) throws -> [EntryDigest: Int64] {
        var known: [EntryDigest: Int64] = [:]
        let total = try db.scalarInt("SELECT coalesce(sum(entries), 0) FROM listing_chunks") ?? 0
        known.reserveCapacity(Int(clamping: total))
        let chunks = try db.prepare("SELECT first_entry, digests FROM listing_chunks")
        while try chunks.step() {
            let first = chunks.int(0)
            let count = Int(sqlite3_column_bytes(chunks.handle, 1))
            guard count > 0, let base = sqlite3_column_blob(chunks.handle, 1) else { continue }
            var found: [(Int64, EntryDigest)] = []
            do {
                try EntryDigest.decode(firstEntry: first, UnsafeRawBufferPointer(start: base, count: count)) {
                    found.append(($0, $1))
                }
            } catch {
                continue
            }
            for (id, digest) in found { known[digest] = id }
        }
        chunks.reset()
        let plain = try db.prepare("SELECT id, sha256 FROM listing_entries")
        while try plain.step() {
            let count = Int(sqlite3_column_bytes(plain.handle, 1))
            guard count >= EntryDigest.size, let base = sqlite3_column_blob(plain.handle, 1) else { continue }
            known[EntryDigest(UnsafeRawBufferPointer(start: base, count: EntryDigest.size))] = plain.int(0)
        }
        plain.reset()
        return known
    }

    /// Reads kept listings back. Remembers the last entry list it built, so that listings read
    /// in order (as `audit` does) each cost one step of their chain.
    struct Reader {
        let db: Database
        private var cached: (id: Int64, ids: [Int64])?
        /// The chunks of the last listing loaded: the next one shares most of them.
        let chunks: ListingChunkCache

        init(_ db: Database) {
            self.db = db
            chunks = ListingChunkCache(db)
        }

        struct Kept {
            var layout: ListingLayout
            var baseID: Int64?
        }

        private func kept(_ id: Int64) throws -> Kept {
            let select = try db.prepare("SELECT layout, base_id FROM listings WHERE id = ?1")
            try select.bind(1, id)
            guard try select.step() else { throw ListingLayout.Malformed(message: "listing \(id) is missing") }
            guard let bytes = select.blob(0) else {
                throw ListingLayout.Malformed(message: "listing \(id) has no layout")
            }
            return Kept(layout: try ListingLayout.decode(bytes), baseID: select.isNull(1) ? nil : select.int(1))
        }

        /// The listing's entry ids, in order.
        mutating func entryIDs(listing id: Int64) throws -> [Int64] {
            if let cached, cached.id == id { return cached.ids }
            var chain: [Kept] = []
            var next: Int64? = id
            var base: [Int64]?
            while let current = next {
                if let cached, cached.id == current {
                    base = cached.ids
                    break
                }
                let kept = try kept(current)
                chain.append(kept)
                guard chain.count <= ListingArchive.maxDepth + 1 || kept.baseID == nil else {
                    throw ListingLayout.Malformed(
                        message: "listing \(id): its chain of bases is longer than \(ListingArchive.maxDepth)")
                }
                next = kept.baseID
            }
            for kept in chain.reversed() {
                base = try kept.layout.entryIDs(base: kept.baseID == nil ? nil : base)
            }
            let ids = base ?? []
            cached = (id, ids)
            return ids
        }

        /// The signed payload, byte for byte as it was signed.
        mutating func payload(listing id: Int64) throws -> OwnedBytes {
            let layout = try kept(id).layout
            let ids = try entryIDs(listing: id)
            try chunks.load(ids)
            let length = layout.payloadLength
            guard let memory = malloc(max(1, length))?.assumingMemoryBound(to: UInt8.self) else {
                throw DatabaseError(
                    code: SQLITE_NOMEM, message: "out of memory rebuilding listing \(id) (\(length) bytes)",
                    path: db.path)
            }
            let bytes = OwnedBytes(taking: memory, count: length)
            var offset = 0
            func put(_ source: UnsafeRawBufferPointer) throws {
                guard source.count <= length - offset else {
                    throw ListingLayout.Malformed(message: "listing \(id) rebuilds to more than its \(length) bytes")
                }
                if let from = source.baseAddress, source.count > 0 {
                    (memory + offset).update(from: from.assumingMemoryBound(to: UInt8.self), count: source.count)
                }
                offset += source.count
            }
            try layout.prefix.withUnsafeBytes(put)
            for (number, entryID) in ids.enumerated() {
                if number > 0 { try layout.gap(before: number).withUnsafeBytes(put) }
                guard let entry = chunks.entry(entryID) else {
                    throw ListingLayout.Malformed(message: "listing \(id): entry \(entryID) is missing")
                }
                try put(entry)
            }
            try layout.suffix.withUnsafeBytes(put)
            guard offset == length else {
                throw ListingLayout.Malformed(message: "listing \(id) rebuilds to \(offset) bytes, not \(length)")
            }
            return bytes
        }
    }
}
