import CSQLite

/// The inflated chunks one kept listing uses (and its entries kept plain before migration 10),
/// for reading its entries by id. Loaded per listing: the chunks the last listing used and
/// this one uses too stay inflated, the others are let go, so `audit`, which reads the
/// listings in order, inflates each chunk about once rather than once per listing.
final class ListingChunkCache {
    private let db: Database
    /// Each chunk's first and last entry id, in order (a few hundred rows after a year).
    private var directory: [(first: Int64, last: Int64)]?
    private var chunks: [Int64: ListingChunk] = [:]
    /// The listing's entries kept plain (`listing_entries`, migration 7), gathered as one.
    private var plain: ListingChunk?
    private var current: ListingChunk?

    init(_ db: Database) { self.db = db }

    /// Makes every entry of `ids` readable through `entry(_:)`.
    func load(_ ids: [Int64]) throws {
        let directory = try self.directory ?? readDirectory()
        self.directory = directory
        var used = Set<Int64>()
        var plainIDs: [Int64] = []
        var place: Int?
        for id in ids {
            if let known = place, directory[known].first <= id, id <= directory[known].last { continue }
            if let found = Self.find(id, in: directory) {
                place = found
                used.insert(directory[found].first)
            } else {
                plainIDs.append(id)
            }
        }
        current = nil
        chunks = chunks.filter { used.contains($0.key) }
        let select = try db.prepare("SELECT bytes, body FROM listing_chunks WHERE first_entry = ?1")
        for first in used.sorted() where chunks[first] == nil {
            try select.bind(1, first)
            guard try select.step() else { throw ListingLayout.Malformed(message: "chunk \(first) is missing") }
            let inflated = Int(clamping: select.int(0))
            let count = Int(sqlite3_column_bytes(select.handle, 1))
            let body = UnsafeRawBufferPointer(start: sqlite3_column_blob(select.handle, 1), count: count)
            chunks[first] = try ListingChunk.decode(firstEntry: first, inflatedBytes: inflated, body: body)
            select.reset()
        }
        plain = plainIDs.isEmpty ? nil : try readPlain(Array(Set(plainIDs)).sorted())
    }

    /// Entry `id`'s bytes, valid until the next `load`; nil if the listing's chunks lack it.
    func entry(_ id: Int64) -> UnsafeRawBufferPointer? {
        if let current, let index = current.index(of: id) { return current.entry(index) }
        if let directory, let found = Self.find(id, in: directory), let chunk = chunks[directory[found].first],
            let index = chunk.index(of: id)
        {
            current = chunk
            return chunk.entry(index)
        }
        if let plain, let index = plain.index(of: id) { return plain.entry(index) }
        return nil
    }

    private func readDirectory() throws -> [(first: Int64, last: Int64)] {
        let select = try db.prepare("SELECT first_entry, last_entry FROM listing_chunks ORDER BY first_entry")
        var list: [(first: Int64, last: Int64)] = []
        while try select.step() { list.append((select.int(0), select.int(1))) }
        return list
    }

    /// The chunk whose id range holds `id`.
    private static func find(_ id: Int64, in directory: [(first: Int64, last: Int64)]) -> Int? {
        var low = 0
        var high = directory.count
        while low < high {
            let middle = (low + high) / 2
            if directory[middle].last < id { low = middle + 1 } else { high = middle }
        }
        return low < directory.count && directory[low].first <= id ? low : nil
    }

    /// Entries `ids` (ascending) of `listing_entries`, read by ranges of consecutive ids: a walk
    /// along the table's leaves instead of one descent of its B-tree per entry.
    private func readPlain(_ ids: [Int64]) throws -> ListingChunk {
        let range = try db.prepare("SELECT id, body FROM listing_entries WHERE id BETWEEN ?1 AND ?2 ORDER BY id")
        var bytes: [UInt8] = []
        var starts: [Int] = []
        starts.reserveCapacity(ids.count + 1)
        var number = 0
        while number < ids.count {
            var end = number + 1
            while end < ids.count && ids[end] == ids[end - 1] &+ 1 { end += 1 }
            try range.bind(1, ids[number])
            try range.bind(2, ids[end - 1])
            var expected = ids[number]
            while try range.step() {
                guard range.int(0) == expected else { break }
                let count = Int(sqlite3_column_bytes(range.handle, 1))
                starts.append(bytes.count)
                if count > 0 {
                    bytes.append(
                        contentsOf: UnsafeRawBufferPointer(start: sqlite3_column_blob(range.handle, 1), count: count))
                }
                number += 1
                expected += 1
            }
            range.reset()
            guard number == end else { throw ListingLayout.Malformed(message: "entry \(ids[number]) is missing") }
        }
        starts.append(bytes.count)
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, bytes.count), alignment: 8)
        bytes.withUnsafeBytes { memory.copyMemory(from: $0) }
        return ListingChunk(firstEntry: ids.first ?? 0, ids: ids, starts: starts, memory: memory)
    }
}
