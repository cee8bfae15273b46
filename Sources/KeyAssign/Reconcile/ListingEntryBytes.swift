/// The bytes of the entries one kept listing uses, each found by its entry id: what a rebuild
/// assembles the payload from, and what the next listing is compared with when it is stored.
/// Each chunk is inflated once per listing, and only the entries the listing uses are kept
/// (a chunk of a first listing holds mostly entries since changed).
final class ListingEntryBytes {
    private(set) var storage: [UInt8] = []
    /// Entry id → where its bytes lie in `storage`.
    private(set) var spans: [Int64: Range<Int>] = [:]

    init(capacity: Int, entries: Int) {
        storage.reserveCapacity(capacity)
        spans.reserveCapacity(entries)
    }

    var totalBytes: Int { storage.count }

    func contains(_ id: Int64) -> Bool { spans[id] != nil }

    func add(_ id: Int64, _ bytes: UnsafeRawBufferPointer) {
        let start = storage.count
        storage.append(contentsOf: bytes)
        spans[id] = start..<storage.count
    }

    func add(_ id: Int64, _ bytes: ArraySlice<UInt8>) {
        let start = storage.count
        storage.append(contentsOf: bytes)
        spans[id] = start..<storage.count
    }

    /// Copies entry `id` of `other` in, if it has it.
    func copy(_ id: Int64, from other: ListingEntryBytes) -> Bool {
        guard let span = other.spans[id] else { return false }
        add(id, other.storage[span])
        return true
    }
}
