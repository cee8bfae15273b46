#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Streams one file at a time into `work`, `invalid_rows` and `imports`, in one transaction
/// per file with statements prepared once. `ImportJob` decides which files and in what order.
final class FileImporter {
    static let problemsShown = 5
    /// SQLite's page cache while a file is imported. Random license keys land all over the
    /// unique index; once the cache is full, every insert evicts a dirty index page into the
    /// WAL and reads another back. A bigger cache is most of the speed (measured with
    /// scripts/bench-import.sh); this size keeps peak RSS under 64 MB.
    static let importCacheKiB = 32768

    private let db: Database
    private let options: ImportOptions
    private var insertStatements: [Int: Statement] = [:]
    private let batch = WorkBatch()
    private var importID: Int64 = 0
    private var now = ""
    private let findWork: Statement
    private let insertInvalid: Statement
    private let findImport: Statement
    private let insertImport: Statement
    private let updateImport: Statement
    private let findUnchanged: Statement
    private let recordIdentity: Statement
    private let tokens = TokenGenerator()
    private var joinedName: [UInt8] = []
    /// The current file's encoding, and whether it is read as UTF-8 only for want of a BOM
    /// or `--encoding` (then text that is not UTF-8 refuses the file).
    private var encoding: InputEncoding = .utf8
    private var strictUTF8 = true

    /// Connection settings around a file's transaction (pragmas cannot change inside one),
    /// restored after it. Each measured with scripts/bench-import.sh (docs/benchmarks.md):
    /// - A multi-row INSERT keeps a statement journal (to undo just that statement); past
    ///   64 KiB it spills to a temporary file, which tripled the import's system time. In
    ///   memory it is at most one batch's pages.
    /// - `work.state`'s CHECK (`state IN (…7 states…)`) still cost ~1.8 s per million rows
    ///   (about 20 %). The importer never gives `state`: every row gets the column's default
    ///   `pending`, which satisfies the CHECK by construction, so the check is skipped for
    ///   these inserts only.
    /// - Foreign keys: every row's `import_id` is the `imports` row this same transaction
    ///   inserted first, so the reference holds by construction; enforcing it made SQLite
    ///   keep a statement journal for every multi-row INSERT (copying each touched page:
    ///   ~15 % of the time in memmove and malloc). With it off, and `INSERT OR FAIL` for the
    ///   other constraints, no statement journal is needed. NOT NULL and UNIQUE stay
    ///   enforced: a row SQLite refused would fail the whole file, never vanish.
    static func bulkInsertSettings(_ inMemory: Bool) -> String {
        "PRAGMA temp_store = \(inMemory ? "MEMORY" : "DEFAULT"); PRAGMA ignore_check_constraints = \(inMemory ? "ON" : "OFF"); PRAGMA foreign_keys = \(inMemory ? "OFF" : "ON")"
    }

    init(database: Database, options: ImportOptions) throws {
        db = database
        self.options = options
        findWork = try db.prepare(
            "SELECT owner_name, email, \(WorkSourcePath.sql), source_line, import_id FROM work WHERE license_key = ?1")
        insertInvalid = try db.prepare(
            """
            INSERT INTO invalid_rows (import_id, source_file, source_line, raw, reason,
                                      license_key, owner_name, email, created_at)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
            """)
        findImport = try db.prepare("SELECT path, imported_at, id FROM imports WHERE sha256 = ?1")
        insertImport = try db.prepare(
            """
            INSERT INTO imports (path, size, sha256, rows_read, rows_queued, rows_duplicate,
                                 rows_conflict, rows_invalid, imported_at)
            VALUES (?1, ?2, ?3, 0, 0, 0, 0, 0, ?4)
            """)
        updateImport = try db.prepare(
            """
            UPDATE imports SET size = ?2, rows_read = ?3, rows_queued = ?4, rows_duplicate = ?5,
                               rows_conflict = ?6, rows_invalid = ?7
            WHERE id = ?1
            """)
        findUnchanged = try db.prepare(
            """
            SELECT imported_at FROM imports
            WHERE path = ?1 AND size = ?2 AND file_device = ?3 AND file_inode = ?4 AND file_mtime_ns = ?5
            """)
        recordIdentity = try db.prepare(
            "UPDATE imports SET file_device = ?2, file_inode = ?3, file_mtime_ns = ?4 WHERE id = ?1")
    }

    /// Imports one file. File problems come back as `.failed`; database failures throw.
    /// `mustBeSettled`: found in a directory, so it is read only if it has not changed for
    /// `options.settle` seconds (checked again here, on the open file, in case it changed since
    /// the scan).
    func importFile(_ path: String, mustBeSettled: Bool = false) throws -> FileImportResult {
        var result = FileImportResult(path: path, status: .imported)
        // O_NONBLOCK: if a FIFO took the place of the file scanned, open must not wait for a
        // writer (on a regular file the flag changes nothing).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            result.status = .failed("\(path): cannot read: \(String(cString: strerror(errno)))")
            return result
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            result.status = .failed("\(path): cannot read: \(String(cString: strerror(errno)))")
            return result
        }
        if let kind = InputFiles.notRegular(info.st_mode) {
            let message = "\(path): not a regular file (\(kind)); only regular files are read"
            result.status = mustBeSettled ? .skipped(message) : .failed(message)
            return result
        }
        if mustBeSettled && options.settle > 0 {
            let age = InputFiles.now() - InputFiles.modificationTime(info)
            if age < options.settle {
                result.status = .skipped(
                    "modified \(Int(max(0, age))) s ago (less than --settle \(InputFiles.seconds(options.settle)) s); left for the next run"
                )
                return result
            }
        }
        // Imported before from this path, and unchanged since by what stat says: not read.
        let identity = FileIdentity(info)
        try findUnchanged.bind(1, path)
        try findUnchanged.bind(2, identity.size)
        try findUnchanged.bind(3, identity.device)
        try findUnchanged.bind(4, identity.inode)
        try findUnchanged.bind(5, identity.modifiedNanoseconds)
        if try findUnchanged.step() {
            result.status = .alreadyImported(previousPath: path, importedAt: findUnchanged.string(0) ?? "?")
            result.unchangedSinceImport = true
            findUnchanged.reset()
            return result
        }
        findUnchanged.reset()
        // A byte-order mark decides the encoding; else --encoding; else UTF-8, strictly.
        var head = [UInt8](repeating: 0, count: 4)
        let headCount = head.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 4, 0) }
        let marked = InputEncoding.fromByteOrderMark(Array(head.prefix(max(0, headCount))))
        let encoding = marked ?? options.encoding ?? .utf8
        let strictUTF8 = marked == nil && options.encoding == nil

        // Pass 1: the digest decides whether the file was imported before, without parsing it.
        let sha: String
        do {
            sha = try FileDigest.sha256(fileDescriptor: fd, path: path).hex
        } catch {
            result.status = .failed("\(path): cannot read: \(error)")
            return result
        }
        findImport.reset()
        try findImport.bind(1, sha)
        if try findImport.step() {
            result.status = .alreadyImported(
                previousPath: findImport.string(0) ?? "?", importedAt: findImport.string(1) ?? "?")
            let importID = findImport.int(2)
            let samePath = findImport.string(0) == path
            findImport.reset()
            // The same file touched or copied over unchanged: what stat says now, so that the
            // next import of it is a stat again.
            if samePath && !options.dryRun { try record(identity, importID: importID) }
            return result
        }
        findImport.reset()
        guard lseek(fd, 0, SEEK_SET) == 0 else {
            result.status = .failed("\(path): cannot read: \(String(cString: strerror(errno)))")
            return result
        }

        // Pass 2, in one transaction: nothing of the file stays unless all of it was read.
        let previousCacheSize = try db.scalarInt("PRAGMA cache_size") ?? -16384
        try db.execute("PRAGMA cache_size = -\(Self.importCacheKiB)")
        try db.execute(Self.bulkInsertSettings(true))
        defer {
            try? db.execute("PRAGMA cache_size = \(previousCacheSize)")
            try? db.execute(Self.bulkInsertSettings(false))
        }
        do {
            try db.inTransaction(.immediate) {
                let digest = try SHA256Digest()
                let reader = CSVReader(
                    fileDescriptor: fd, delimiter: options.delimiter, digest: digest, encoding: encoding)
                self.encoding = encoding
                self.strictUTF8 = strictUTF8
                let now = Timestamps.nowISO8601()
                try insertImport.bind(1, path)
                try insertImport.bind(2, Int64(0))
                try insertImport.bind(3, sha)
                try insertImport.bind(4, now)
                try insertImport.step()
                insertImport.reset()
                let importID = db.lastInsertRowID

                if let failure = try stream(reader, into: &result, importID: importID, now: now) {
                    result.status = .failed(failure)
                } else if digest.finalHex() != sha {
                    result.status = .failed(
                        "\(path): the file changed while it was read; nothing imported from it, run again")
                }
                if case .failed = result.status { return .rollback }
                try updateImport.bind(1, importID)
                try updateImport.bind(2, reader.bytesRead)
                try updateImport.bind(3, result.rowsRead)
                try updateImport.bind(4, result.queued)
                try updateImport.bind(5, result.duplicates)
                try updateImport.bind(6, result.conflicts)
                try updateImport.bind(7, result.invalid)
                try updateImport.step()
                updateImport.reset()
                try record(identity, importID: importID)
                // A dry run has done all a real import does, counts included: it only keeps nothing.
                return options.dryRun ? .rollback : .commit
            }
        } catch let readError as CSVReader.ReadError {
            result.status = .failed("\(path): read error: \(readError)")
            return result
        }
        if case .failed = result.status {
            // Nothing of the file stays, so nothing of it is counted either.
            return FileImportResult(path: path, status: result.status)
        }
        return result
    }

    private func record(_ identity: FileIdentity, importID: Int64) throws {
        try recordIdentity.bind(1, importID)
        try recordIdentity.bind(2, identity.device)
        try recordIdentity.bind(3, identity.inode)
        try recordIdentity.bind(4, identity.modifiedNanoseconds)
        try recordIdentity.step()
        recordIdentity.reset()
    }

    /// Reads the header and every row. Returns a message when the file must be refused.
    private func stream(_ reader: CSVReader, into result: inout FileImportResult, importID: Int64, now: String) throws
        -> String?
    {
        let path = result.path
        // The header: the first non-blank record.
        guard try reader.next() else {
            return "\(path): empty file (a header row is required); headers found: (none)"
        }
        var headers: [String] = []
        for index in 0..<reader.fieldCount {
            headers.append(String(decoding: RowValidation.trim(reader.field(index)), as: UTF8.self))
        }
        if strictUTF8, let refusal = notUTF8(reader.raw, path: path, line: reader.line, what: "the header row") {
            return refusal
        }
        if strictUTF8 && reader.raw.contains(0) {
            let likely = InputEncoding.likely(for: reader.raw)
            return
                "\(path):\(reader.line): the header row holds NUL bytes: this looks like \(likely.displayName) without a byte-order mark; "
                + "import it with --encoding \(likely.rawValue). Nothing of this file was imported."
        }
        if let malformation = reader.malformation {
            return
                "\(path):\(reader.line): the header row is malformed (\(malformation)); headers found: \(String(decoding: reader.raw, as: UTF8.self))"
        }
        let mapping: ColumnMapping
        let rules = options.columnRules(for: path)
        switch ColumnMapping.resolve(
            headers: headers, overrides: rules.overrides, strict: rules.strict,
            allowMissing: rules.allowMissing)
        {
        case .success(let found): mapping = found
        case .failure(let failure): return failure.message(file: path, headers: headers)
        }
        let delimiterName = CSVDelimiter(byte: reader.delimiter)?.displayName ?? "?"
        result.mappingSummary = "columns \(mapping.summary), delimiter \"\(delimiterName)\""

        // Values bound once for the whole file.
        self.importID = importID
        self.now = now
        batch.removeAll()
        insertInvalid.reset()
        try insertInvalid.bind(1, importID)
        try insertInvalid.bind(2, path)
        try insertInvalid.bind(9, now)

        let used = Set(
            [mapping.licenseKey, mapping.ownerName, mapping.firstName, mapping.lastName, mapping.email].compactMap {
                $0
            })
        let usedMask = (0..<mapping.columnCount).map { used.contains($0) }

        rows: while try reader.next() {
            let line = reader.line
            if let malformation = reader.malformation {
                if strictUTF8, let refusal = notUTF8(reader.raw, path: path, line: line, what: "line") {
                    return refusal
                }
                result.rowsRead += 1
                try recordInvalid(
                    line: line, raw: reader.raw, reason: malformation, key: nil, owner: nil, email: nil, into: &result)
                continue
            }
            let count = reader.fieldCount
            if count == 1 && RowValidation.trim(reader.field(0)).isEmpty {
                continue  // a line of spaces: as blank as an empty one
            }
            result.rowsRead += 1
            if count != mapping.columnCount {
                if strictUTF8, let refusal = notUTF8(reader.raw, path: path, line: line, what: "line") {
                    return refusal
                }
                try recordInvalid(
                    line: line, raw: reader.raw,
                    reason: "\(count) field\(count == 1 ? "" : "s") where the header has \(mapping.columnCount)",
                    key: nil, owner: nil, email: nil, into: &result)
                continue
            }
            for column in 0..<count {
                let value = usedMask[column] ? RowValidation.trim(reader.field(column)) : reader.field(column)
                if let problem = RowValidation.problem(in: value, allowLineBreaks: !usedMask[column]) {
                    if case .invalidUTF8 = problem, strictUTF8,
                        let refusal = notUTF8(reader.raw, path: path, line: line, what: "line")
                    {
                        return refusal
                    }
                    // The fields that are sound are kept with the row, so that `history` and
                    // the reports can name its key (a quoted line break in the name, say).
                    func clean(_ index: Int?) -> UnsafeRawBufferPointer? {
                        guard let index, index != column else { return nil }
                        let value = RowValidation.trim(reader.field(index))
                        return value.isEmpty || RowValidation.problem(in: value, allowLineBreaks: false) != nil
                            ? nil : value
                    }
                    try recordInvalid(
                        line: line, raw: reader.raw,
                        reason: RowValidation.describe(problem, column: mapping.name(column), encoding: encoding),
                        key: clean(mapping.licenseKey), owner: clean(mapping.ownerName),
                        email: clean(mapping.email), into: &result)
                    continue rows
                }
            }
            let key = RowValidation.trim(reader.field(mapping.licenseKey))
            let email = mapping.email.map { RowValidation.trim(reader.field($0)) }
            try withOwnerName(reader, mapping) { owner in
                let ownerValue = owner.flatMap { $0.isEmpty ? nil : $0 }
                let emailValue = email.flatMap { $0.isEmpty ? nil : $0 }
                var reason: String?
                if key.isEmpty {
                    reason = "empty license key (column \"\(mapping.name(mapping.licenseKey))\")"
                } else if key.count > RowValidation.maxKeyBytes {
                    reason =
                        "license key longer than the limit of \(RowValidation.maxKeyBytes) bytes (column \"\(mapping.name(mapping.licenseKey))\")"
                } else if let emailValue, let problem = RowValidation.emailProblem(emailValue) {
                    reason = "implausible email \"\(String(decoding: emailValue, as: UTF8.self))\": \(problem)"
                } else if let ownerValue, RowValidation.ownerTooLong(ownerValue) {
                    reason = "owner name longer than \(RowValidation.maxOwnerCharacters) characters"
                }
                if let reason {
                    try recordInvalid(
                        line: line, raw: reader.raw, reason: reason,
                        key: key.isEmpty ? nil : key, owner: ownerValue, email: emailValue, into: &result)
                    return
                }
                let token = try tokens.next()
                let rowBytes =
                    key.count + (ownerValue?.count ?? 0) + (emailValue?.count ?? 0) + token.count + reader.raw.count
                if !batch.fits(rowBytes) {
                    try flush(into: &result)
                    // The reader's and the fields' limits keep every row far inside an empty
                    // arena; checked anyway, since a row that did not fit would write past it.
                    guard batch.fits(rowBytes) else {
                        try recordInvalid(
                            line: line, raw: reader.raw,
                            reason: "row larger than the import's buffer of \(WorkBatch.arenaBytes) bytes",
                            key: nil, owner: nil, email: nil, into: &result)
                        return
                    }
                }
                batch.append(line: line, key: key, owner: ownerValue, email: emailValue, token: token, raw: reader.raw)
                if batch.isFull { try flush(into: &result) }
            }
        }
        try flush(into: &result)
        return nil
    }

    /// The refusal of a file read as UTF-8 for want of a BOM or `--encoding` when `raw` is not
    /// UTF-8: importing the rest would queue its other rows and drop these (or, for UTF-16,
    /// queue garbage). It names the encoding the bytes look like and the flag to give.
    private func notUTF8(_ raw: UnsafeRawBufferPointer, path: String, line: Int, what: String) -> String? {
        guard case .invalidUTF8(let offset)? = RowValidation.problem(in: raw, allowLineBreaks: true) else { return nil }
        let likely = InputEncoding.likely(for: raw)
        let byte = String(raw[offset], radix: 16, uppercase: true)
        return
            "\(path):\(line): \(what) is not valid UTF-8 (byte 0x\(byte) at \(offset + 1)): this looks like \(likely.displayName); "
            + "import it with --encoding \(likely.rawValue) (or --encoding utf-8 to record such rows as invalid). Nothing of this file was imported."
    }

    /// The owner name: its column, or first and last name joined by a space.
    private func withOwnerName(
        _ reader: CSVReader, _ mapping: ColumnMapping,
        _ body: (UnsafeRawBufferPointer?) throws -> Void
    ) throws {
        if let column = mapping.ownerName {
            return try body(RowValidation.trim(reader.field(column)))
        }
        guard mapping.firstName != nil || mapping.lastName != nil else { return try body(nil) }
        joinedName.removeAll(keepingCapacity: true)
        for column in [mapping.firstName, mapping.lastName].compactMap({ $0 }) {
            let part = RowValidation.trim(reader.field(column))
            if part.isEmpty { continue }
            if !joinedName.isEmpty { joinedName.append(UInt8(ascii: " ")) }
            joinedName.append(contentsOf: part)
        }
        try joinedName.withUnsafeBytes { try body($0) }
    }

    /// Inserts the batch in one statement run; rows it did not insert (their key is already
    /// there) are classified as duplicates or conflicts, in line order.
    private func flush(into result: inout FileImportResult) throws {
        let rows = batch.rows
        guard !rows.isEmpty else { return }
        defer { batch.removeAll() }
        let statement = try insertStatement(rows: rows.count)
        statement.reset()
        try statement.bind(1, importID)
        // The path is the import's (`WorkSourcePath`), not repeated per row.
        try statement.bind(2, WorkSourcePath.stored)
        try statement.bind(3, now)
        for (k, row) in rows.enumerated() {
            let b = Int32(4 + 5 * k)
            // No copies: the arena holds the bytes until the batch is cleared after this run.
            try statement.bindTextNoCopy(b, batch.bytes(row.key))
            try statement.bindTextNoCopy(b + 1, batch.bytes(row.owner))
            try statement.bindTextNoCopy(b + 2, batch.bytes(row.email))
            try statement.bindTextNoCopy(b + 3, batch.bytes(row.token))
            try statement.bind(b + 4, row.line)
        }
        try statement.step()
        statement.reset()
        let inserted = db.changes
        result.queued += inserted
        if inserted == rows.count { return }
        // Some keys were there already (rare): look each row up; the row it finds is its own
        // when this file and line inserted it.
        for row in rows {
            try classifyExisting(row, into: &result)
        }
    }

    private func insertStatement(rows count: Int) throws -> Statement {
        if let statement = insertStatements[count] { return statement }
        let statement = try db.prepare(WorkBatch.insertSQL(rows: count))
        insertStatements[count] = statement
        return statement
    }

    /// A row whose key was already in `work`: the same owner and email is a duplicate (no new
    /// work); anything else is a conflict, recorded as invalid, and the first row stays.
    private func classifyExisting(_ row: WorkBatch.Row, into result: inout FileImportResult) throws {
        let key = batch.bytes(row.key)
        let owner = batch.bytes(row.owner)
        let email = batch.bytes(row.email)
        findWork.reset()
        try findWork.bindText(1, key)
        guard try findWork.step() else {
            throw KeyAssignError(.ioError, "database \(db.path): license key neither inserted nor found")
        }
        if findWork.int(4) == importID && findWork.int(3) == Int64(row.line) {
            findWork.reset()
            return  // inserted by this batch: already counted as queued
        }
        let oldOwner = findWork.string(0)
        let oldEmail = findWork.string(1)
        let oldSource = "\(findWork.string(2) ?? "?"):\(findWork.int(3))"
        findWork.reset()
        let newOwner = owner.map { String(decoding: $0, as: UTF8.self) }
        let newEmail = email.map { String(decoding: $0, as: UTF8.self) }
        if oldOwner == newOwner && oldEmail == newEmail {
            result.duplicates += 1
            return
        }
        let differs = [oldOwner != newOwner ? "owner name" : nil, oldEmail != newEmail ? "email" : nil]
            .compactMap { $0 }.joined(separator: " and ")
        let reason = "conflict: \(result.path):\(row.line) has a different \(differs) than \(oldSource), which is kept"
        try recordInvalid(
            line: row.line, raw: batch.bytes(row.raw), reason: reason, key: key, owner: owner, email: email,
            into: &result, isConflict: true)
    }

    private func recordInvalid(
        line: Int, raw: UnsafeRawBufferPointer, reason: String,
        key: UnsafeRawBufferPointer?, owner: UnsafeRawBufferPointer?,
        email: UnsafeRawBufferPointer?, into result: inout FileImportResult,
        isConflict: Bool = false
    ) throws {
        // Rows before this one go in first, so that problems are listed in line order.
        if !isConflict { try flush(into: &result) }
        if isConflict { result.conflicts += 1 } else { result.invalid += 1 }
        if result.problems.count < Self.problemsShown {
            result.problems.append("\(result.path):\(line): \(reason)")
        }
        try insertInvalid.bind(3, line)
        if case .invalidUTF8? = RowValidation.problem(in: raw, allowLineBreaks: true) {
            // Stored as UTF-8 like everything else: undecodable bytes become U+FFFD.
            try insertInvalid.bind(4, String(decoding: raw, as: UTF8.self))
        } else {
            try insertInvalid.bindText(4, raw)
        }
        try insertInvalid.bind(5, reason)
        try insertInvalid.bindText(6, key)
        try insertInvalid.bindText(7, owner)
        try insertInvalid.bindText(8, email)
        try insertInvalid.step()
        insertInvalid.resetKeepingBindings()
    }
}
