import COpenSSL
import CSQLite

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Keeps verified key listings so that the nights do not each add a whole listing (issue 21):
/// every distinct entry once (`listing_entries`, by the SHA-256 of its exact bytes), and each
/// listing as a `ListingLayout` over them, written against the last kept listing. The signed
/// payload is rebuilt byte for byte from these, and its signature verifies again (`audit`).
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
        let ids = try entryIDs(payload, ranges, in: db)
        // The last kept listing in this form is the base, unless its chain is long enough.
        var base: (id: Int64, depth: Int, ids: [Int64])?
        let last = try db.prepare(
            """
            SELECT id, layout_depth FROM listings WHERE layout IS NOT NULL AND pruned_at IS NULL ORDER BY id DESC LIMIT 1
            """)
        if try last.step(), !last.isNull(1), Int(last.int(1)) < maxDepth {
            let id = last.int(0)
            let depth = Int(last.int(1))
            last.reset()
            var reader = Reader(db)
            // A base that cannot be read back (edited by hand: `audit` says so) is not
            // copied from; this listing stands alone.
            do {
                base = (id, depth, try reader.entryIDs(listing: id))
            } catch is ListingLayout.Malformed {
                base = nil
            }
        }
        last.reset()
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

    /// Each entry's row id, inserting the entries not kept yet (a few hundred on a usual night).
    private static func entryIDs(_ payload: UnsafeBufferPointer<UInt8>, _ ranges: [Range<Int>], in db: Database) throws
        -> [Int64]
    {
        let find = try db.prepare("SELECT id FROM listing_entries WHERE sha256 = ?1")
        let insert = try db.prepare("INSERT INTO listing_entries (sha256, body) VALUES (?1, ?2)")
        guard let md = EVP_sha256() else { throw KeyAssignError(.config, "OpenSSL has no SHA-256") }
        var ids: [Int64] = []
        ids.reserveCapacity(ranges.count)
        var digest = [UInt8](repeating: 0, count: 32)
        for range in ranges {
            let entry = UnsafeBufferPointer(rebasing: payload[range])
            var length: UInt32 = 0
            guard EVP_Digest(entry.baseAddress, entry.count, &digest, &length, md, nil) == 1 else {
                throw KeyAssignError(.config, "OpenSSL: SHA-256 failed: \(OpenSSLErrors.drain())")
            }
            try find.bindBlob(1, digest)
            if try find.step() {
                ids.append(find.int(0))
                find.reset()
                continue
            }
            find.reset()
            try insert.bindBlob(1, digest)
            try ListingStorage.bindBlobNoCopy(insert, 2, entry)
            try insert.step()
            insert.reset()
            ids.append(db.lastInsertRowID)
        }
        return ids
    }

    /// Reads kept listings back. Remembers the last entry list it built, so that listings read
    /// in order (as `audit` does) each cost one step of their chain.
    struct Reader {
        let db: Database
        private var cached: (id: Int64, ids: [Int64])?

        init(_ db: Database) { self.db = db }

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
            // Consecutive ids are read as one range (a first listing is one): a walk along the
            // table's leaves instead of one descent of its B-tree per entry.
            let range = try db.prepare("SELECT id, body FROM listing_entries WHERE id BETWEEN ?1 AND ?2 ORDER BY id")
            var number = 0
            while number < ids.count {
                var end = number + 1
                while end < ids.count && ids[end] == ids[end - 1] &+ 1 { end += 1 }
                try range.bind(1, ids[number])
                try range.bind(2, ids[end - 1])
                var expected = ids[number]
                while try range.step() {
                    guard range.int(0) == expected else { break }
                    if number > 0 { try layout.gap(before: number).withUnsafeBytes(put) }
                    let count = Int(sqlite3_column_bytes(range.handle, 1))
                    try put(UnsafeRawBufferPointer(start: sqlite3_column_blob(range.handle, 1), count: count))
                    number += 1
                    expected += 1
                }
                range.reset()
                guard number == end else {
                    throw ListingLayout.Malformed(message: "listing \(id): entry \(ids[number]) is missing")
                }
            }
            try layout.suffix.withUnsafeBytes(put)
            guard offset == length else {
                throw ListingLayout.Malformed(message: "listing \(id) rebuilds to \(offset) bytes, not \(length)")
            }
            return bytes
        }
    }
}
