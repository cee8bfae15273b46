import CSQLite

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The two blob accesses a stored key listing needs, which would otherwise hold it twice in
/// memory: binding it without a copy, and reading it back into one buffer. (Kept beside the
/// reconciler rather than in `Database`: only listings are this large.)
enum ListingStorage {
    /// Binds a blob without copying it (SQLITE_STATIC): the caller keeps the bytes alive and
    /// unchanged until the statement is stepped and reset.
    static func bindBlobNoCopy(_ statement: Statement, _ index: Int32, _ bytes: UnsafeBufferPointer<UInt8>) throws {
        let handle = statement.handle
        let database = statement.database
        let rc =
            bytes.baseAddress.map { sqlite3_bind_blob64(handle, index, $0, sqlite3_uint64(bytes.count), nil) }
            ?? sqlite3_bind_zeroblob(handle, index, 0)
        if rc != SQLITE_OK {
            throw DatabaseError(
                code: rc, message: String(cString: sqlite3_errmsg(database.handle)), path: database.path,
                systemErrno: sqlite3_system_errno(database.handle))
        }
    }

    /// A blob read in chunks (sqlite3_blob_read) into one buffer the caller owns. Through
    /// `sqlite3_column_blob`, SQLite would first load the whole value itself, and the copy out
    /// of it would double the peak. The value must be a blob (or text), not NULL.
    static func readBlob(_ db: Database, table: String, column: String, row: Int64) throws -> OwnedBytes {
        let handle = db.handle
        let path = db.path
        var blob: OpaquePointer?
        let rc = sqlite3_blob_open(handle, "main", table, column, row, 0, &blob)
        guard rc == SQLITE_OK, let blob else {
            if let blob { sqlite3_blob_close(blob) }
            throw DatabaseError(
                code: rc, message: String(cString: sqlite3_errmsg(handle)), path: path,
                systemErrno: sqlite3_system_errno(handle))
        }
        defer { sqlite3_blob_close(blob) }
        let count = Int(sqlite3_blob_bytes(blob))
        guard let memory = malloc(max(1, count))?.assumingMemoryBound(to: UInt8.self) else {
            throw DatabaseError(
                code: SQLITE_NOMEM, message: "out of memory reading \(table).\(column) (\(count) bytes)",
                path: path)
        }
        let bytes = OwnedBytes(taking: memory, count: count)
        let chunk = 1 << 20
        var offset = 0
        while offset < count {
            let length = min(chunk, count - offset)
            let read = sqlite3_blob_read(blob, memory + offset, Int32(length), Int32(offset))
            if read != SQLITE_OK {
                throw DatabaseError(
                    code: read, message: String(cString: sqlite3_errmsg(handle)), path: path,
                    systemErrno: sqlite3_system_errno(handle))
            }
            offset += length
        }
        return bytes
    }
}
