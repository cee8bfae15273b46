import COpenSSL

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `keyassign prune --keep-evidence DAYS`: drops the bytes of key listings fetched more than
/// DAYS ago, keeps a record of each (when it was pruned, and the SHA-256 of what it was), and
/// gives the freed pages back to the file system.
///
/// Settlements keep pointing at a pruned listing; `audit` says "evidence pruned on …" for the
/// rows they settled instead of failing. A kept listing that copied its entry list from a
/// pruned one is written standalone first, and entries no kept listing uses are deleted.
public enum EvidenceRetention {
    public struct Result: Sendable, Equatable {
        public var listingsPruned = 0
        public var listingsRewritten = 0
        public var entriesDeleted = 0
        public var fileBytesBefore: Int64 = 0
        public var fileBytesAfter: Int64 = 0
        /// The database had no incremental vacuum yet (made before issue 21): this prune set it
        /// and rewrote the file once (VACUUM).
        public var convertedToIncrementalVacuum = false
    }

    public static func prune(databasePath: String, keepDays: Double, now: Double = Timestamps.now()) throws -> Result {
        try FlagRange.keepEvidence.check(keepDays)
        let db = try Database(path: databasePath, create: false)
        var result = Result()
        result.fileBytesBefore = fileBytes(databasePath)
        let cutoff = Timestamps.iso8601(now - keepDays * 86_400)
        let nowText = Timestamps.iso8601(now)
        try db.transaction {
            let old = try db.prepare("SELECT id FROM listings WHERE pruned_at IS NULL AND fetched_at < ?1 ORDER BY id")
            try old.bind(1, cutoff)
            var doomed: [Int64] = []
            while try old.step() { doomed.append(old.int(0)) }
            old.reset()
            guard !doomed.isEmpty else { return }
            let doomedSet = Set(doomed)
            var reader = ListingArchive.Reader(db)
            // What each pruned listing was, read while every chain is whole.
            var hashes: [Int64: String] = [:]
            let form = try db.prepare("SELECT layout IS NOT NULL, typeof(payload) FROM listings WHERE id = ?1")
            for id in doomed {
                try form.bind(1, id)
                _ = try form.step()
                let hasLayout = form.int(0) != 0
                let payloadType = form.string(1) ?? "null"
                form.reset()
                let bytes =
                    hasLayout
                    ? try reader.payload(listing: id)
                    : try ListingStorage.readBlob(
                        db, table: "listings", column: payloadType == "null" ? "body" : "payload", row: id)
                hashes[id] = try sha256Hex(bytes.buffer)
            }
            // Kept listings whose base goes: standalone from now on.
            let dependents = try db.prepare(
                "SELECT id, base_id FROM listings WHERE pruned_at IS NULL AND base_id IS NOT NULL ORDER BY id")
            var rewrite: [Int64] = []
            while try dependents.step() {
                if !doomedSet.contains(dependents.int(0)) && doomedSet.contains(dependents.int(1)) {
                    rewrite.append(dependents.int(0))
                }
            }
            dependents.reset()
            let layoutOf = try db.prepare("SELECT layout FROM listings WHERE id = ?1")
            let standalone = try db.prepare(
                "UPDATE listings SET layout = ?1, base_id = NULL, layout_depth = 0 WHERE id = ?2")
            for id in rewrite {
                let ids = try reader.entryIDs(listing: id)
                try layoutOf.bind(1, id)
                _ = try layoutOf.step()
                var layout = try ListingLayout.decode(layoutOf.blob(0) ?? [])
                layoutOf.reset()
                layout.runs = ListingLayout.runs(for: ids, base: nil)
                try standalone.bindBlob(1, layout.encoded())
                try standalone.bind(2, id)
                try standalone.step()
                standalone.reset()
                result.listingsRewritten += 1
            }
            let prune = try db.prepare(
                """
                UPDATE listings SET layout = NULL, payload = NULL, body = x'', base_id = NULL, pruned_at = ?1, payload_sha256 = ?2
                WHERE id = ?3
                """)
            for id in doomed {
                try prune.bind(1, nowText)
                try prune.bind(2, hashes[id])
                try prune.bind(3, id)
                try prune.step()
                prune.reset()
            }
            result.listingsPruned = doomed.count
            result.entriesDeleted = try deleteUnusedEntries(db)
        }
        // Freed pages back to the file system. A database made before migration 7 has no
        // incremental vacuum: setting it takes effect only through one VACUUM (a rewrite of
        // the file, which needs as much free disk as the file).
        if try db.scalarInt("PRAGMA auto_vacuum") != 2 {
            try db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            try db.execute("VACUUM")
            result.convertedToIncrementalVacuum = true
        } else {
            try db.execute("PRAGMA incremental_vacuum")
        }
        // In WAL mode the file is truncated when the log is checkpointed.
        try db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        result.fileBytesAfter = fileBytes(databasePath)
        return result
    }

    /// Entries no kept listing uses, kept plain (migration 7) or deflated (migration 10). A kept
    /// listing's entries are its own `ids` runs and what
    /// it copies from its base, itself kept: the `ids` runs of all kept listings cover them all.
    private static func deleteUnusedEntries(_ db: Database) throws -> Int {
        let layouts = try db.prepare("SELECT layout FROM listings WHERE layout IS NOT NULL")
        var used: [ClosedRange<Int64>] = []
        while try layouts.step() {
            for run in try ListingLayout.decode(layouts.blob(0) ?? []).runs {
                if case .ids(let start, let count) = run, count > 0 { used.append(start...(start + Int64(count) - 1)) }
            }
        }
        layouts.reset()
        used.sort { $0.lowerBound < $1.lowerBound }
        var unused: [Int64] = []
        let all = try db.prepare("SELECT id FROM listing_entries ORDER BY id")
        var next = 0
        while try all.step() {
            let id = all.int(0)
            while next < used.count && used[next].upperBound < id { next += 1 }
            if next == used.count || !used[next].contains(id) { unused.append(id) }
        }
        all.reset()
        let delete = try db.prepare("DELETE FROM listing_entries WHERE id = ?1")
        for id in unused {
            try delete.bind(1, id)
            try delete.step()
            delete.reset()
        }
        return unused.count + (try deleteUnusedChunkEntries(db, used: used))
    }

    /// The same for deflated entries (migration 10): a chunk none of whose entries is used goes;
    /// one with some is written again with only those (its key, the first id, may change).
    private static func deleteUnusedChunkEntries(_ db: Database, used: [ClosedRange<Int64>]) throws -> Int {
        func overlaps(_ range: ClosedRange<Int64>) -> (any: Bool, all: Bool) {
            var covered: Int64 = 0
            for piece in used where piece.overlaps(range) {
                covered += min(piece.upperBound, range.upperBound) - max(piece.lowerBound, range.lowerBound) + 1
            }
            return (covered > 0, covered == range.upperBound - range.lowerBound + 1)
        }
        func isUsed(_ id: Int64) -> Bool {
            var low = 0
            var high = used.count
            while low < high {
                let middle = (low + high) / 2
                if used[middle].upperBound < id { low = middle + 1 } else { high = middle }
            }
            return low < used.count && used[low].contains(id)
        }
        let chunks = try db.prepare("SELECT first_entry, last_entry, entries FROM listing_chunks ORDER BY first_entry")
        var doomed: [Int64] = []
        var partial: [Int64] = []
        var deleted = 0
        while try chunks.step() {
            let (any, all) = overlaps(chunks.int(0)...max(chunks.int(0), chunks.int(1)))
            if !any {
                doomed.append(chunks.int(0))
                deleted += Int(chunks.int(2))
            } else if !all {
                partial.append(chunks.int(0))
            }
        }
        chunks.reset()
        let read = try db.prepare("SELECT bytes, body FROM listing_chunks WHERE first_entry = ?1")
        let delete = try db.prepare("DELETE FROM listing_chunks WHERE first_entry = ?1")
        let digester = try EntryDigest.Maker()
        for first in partial {
            try read.bind(1, first)
            guard try read.step(), let body = read.blob(1) else { continue }
            let inflated = Int(clamping: read.int(0))
            read.reset()
            let chunk = try body.withUnsafeBytes {
                try ListingChunk.decode(firstEntry: first, inflatedBytes: inflated, body: $0)
            }
            let keep = chunk.ids.indices.filter { isUsed(chunk.ids[$0]) }
            deleted += chunk.ids.count - keep.count
            guard keep.count < chunk.ids.count else { continue }
            try delete.bind(1, first)
            try delete.step()
            delete.reset()
            guard !keep.isEmpty else { continue }
            let encoded = try ListingChunk.encode(ids: keep.map { chunk.ids[$0] }, digester: digester) {
                chunk.entry(keep[$0])
            }
            try ListingChunk.insert(encoded, in: db)
        }
        for first in doomed {
            try delete.bind(1, first)
            try delete.step()
            delete.reset()
        }
        return deleted
    }

    static func sha256Hex(_ bytes: UnsafeBufferPointer<UInt8>) throws -> String {
        let digest = try SHA256Digest()
        digest.update(UnsafeRawBufferPointer(bytes))
        return digest.finalHex()
    }

    static func fileBytes(_ path: String) -> Int64 {
        var info = stat()
        return stat(path, &info) == 0 ? Int64(info.st_size) : 0
    }
}
