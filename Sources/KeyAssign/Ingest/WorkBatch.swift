/// Valid rows waiting to be inserted into `work` together, with their bytes copied out of the
/// reader's buffer (which moves when it refills) into one arena.
///
/// Why batches: one multi-row `INSERT … VALUES (…), (…) …` per 64 rows instead of one
/// statement run per row. The partial index `work_due` tests `state IN (…)`, and SQLite builds
/// an ephemeral table for such an IN list once per statement run: per row, that was a quarter
/// of the import's time. 64 rows measured faster than 256 (a bigger statement journal).
/// See docs/benchmarks.md.
final class WorkBatch {
    static let rowsPerBatch = 64
    /// Room for the largest record the reader accepts, plus its token.
    static let arenaBytes = CSVReader.defaultMaxRecordBytes * 2 + 4096

    struct Row {
        var line: Int
        var key: Range<Int>
        var owner: Range<Int>?
        var email: Range<Int>?
        var token: Range<Int>
        var raw: Range<Int>
    }

    private let arena: UnsafeMutablePointer<UInt8>
    private var used = 0
    private(set) var rows: [Row] = []

    init() {
        arena = .allocate(capacity: Self.arenaBytes)
        rows.reserveCapacity(Self.rowsPerBatch)
    }

    deinit { arena.deallocate() }

    var isFull: Bool { rows.count >= Self.rowsPerBatch }

    /// True when a row of this many bytes (all its values together) still fits in the arena.
    func fits(_ bytes: Int) -> Bool { used + bytes <= Self.arenaBytes }

    func append(
        line: Int, key: UnsafeRawBufferPointer, owner: UnsafeRawBufferPointer?,
        email: UnsafeRawBufferPointer?, token: UnsafeRawBufferPointer, raw: UnsafeRawBufferPointer
    ) {
        let keyRange = copy(key)
        let ownerRange = owner.map(copy)
        let emailRange = email.map(copy)
        let tokenRange = copy(token)
        let rawRange = copy(raw)
        rows.append(
            Row(line: line, key: keyRange, owner: ownerRange, email: emailRange, token: tokenRange, raw: rawRange))
    }

    func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: arena + range.lowerBound, count: range.count)
    }

    func bytes(_ range: Range<Int>?) -> UnsafeRawBufferPointer? {
        range.map { bytes($0) }
    }

    func removeAll() {
        rows.removeAll(keepingCapacity: true)
        used = 0
    }

    private func copy(_ source: UnsafeRawBufferPointer) -> Range<Int> {
        let start = used
        if let base = source.baseAddress, source.count > 0 {
            (arena + used).update(from: base.assumingMemoryBound(to: UInt8.self), count: source.count)
            used += source.count
        }
        return start..<used
    }

    /// The INSERT for `count` rows: ?1 import id, ?2 file, ?3 time; then five per row.
    /// `OR FAIL` (rather than the default ABORT) lets SQLite skip the statement journal; an
    /// existing key is the upsert's DO NOTHING, counted by the caller.
    static func insertSQL(rows count: Int) -> String {
        let values = (0..<count).map { k in
            let b = 4 + 5 * k
            return "(?\(b), ?\(b + 1), ?\(b + 2), ?\(b + 3), ?\(b + 4), ?1, ?2, ?3, ?3)"
        }
        return "INSERT OR FAIL INTO work (license_key, owner_name, email, idempotency_token, source_line, "
            + "import_id, source_file, created_at, updated_at) VALUES "
            + values.joined(separator: ", ")
            + " ON CONFLICT (license_key) DO NOTHING"
    }
}
