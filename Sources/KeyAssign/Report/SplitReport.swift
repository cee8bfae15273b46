#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `report --split DIR`: the Data Loader habit. `success.csv` holds the assigned rows;
/// `errors.csv` holds every row that needs a person — rejected, uncertain, failed and
/// invalid input — with a reason in plain words, where it came from and its original
/// fields, so the export can be fixed and fed again.
public enum SplitReport {
    public struct Counts: Sendable, Equatable {
        public var success = 0
        public var errors = 0
    }

    public static let successHeader = [
        "license_key", "owner_name", "email", "code", "source_file", "source_line", "updated_at",
    ]
    public static let errorsHeader = [
        "kind", "reason", "source_file", "source_line", "license_key", "owner_name", "email", "attempts", "raw",
    ]

    /// Both files start with a UTF-8 byte-order mark (they are for spreadsheets: see
    /// `CSVWriter`), `--raw` or not; `delimiter` is `;` for Excel in German or French locales.
    public static func write(
        from db: Database, to directory: String, raw: Bool,
        delimiter: CSVDelimiter = .comma
    ) throws -> Counts {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw KeyAssignError(.ioError, "cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        var counts = Counts()

        let success = try TextOutput(path: directory + "/success.csv")
        let successCSV = CSVWriter(raw: raw, delimiter: delimiter, byteOrderMark: true) { success.write($0) }
        successCSV.writeRow(successHeader)
        try RowReport.forEachRow(in: db, states: [.assigned]) { row in
            successCSV.writeRow([
                row.licenseKey, row.ownerName, row.email, row.code.map(String.init),
                row.sourceFile, String(row.sourceLine), row.updatedAt,
            ])
            counts.success += 1
        }
        try success.finish()

        let errors = try TextOutput(path: directory + "/errors.csv")
        let errorsCSV = CSVWriter(raw: raw, delimiter: delimiter, byteOrderMark: true) { errors.write($0) }
        errorsCSV.writeRow(errorsHeader)
        try RowReport.forEachRow(in: db, states: [.rejected, .uncertain, .failed]) { row in
            errorsCSV.writeRow([
                row.state, plainReason(row), row.sourceFile, String(row.sourceLine),
                row.licenseKey, row.ownerName, row.email, String(row.attempts), nil,
            ])
            counts.errors += 1
        }
        try InvalidRowsReport.forEachRow(in: db) { row in
            errorsCSV.writeRow([
                "invalid", "invalid input: " + (row.reason ?? ""), row.sourceFile, String(row.sourceLine),
                row.licenseKey, row.ownerName, row.email, nil, row.raw,
            ])
            counts.errors += 1
        }
        try errors.finish()
        return counts
    }

    /// Why a row needs a person, in words for sales ops rather than protocol codes.
    public static func plainReason(_ row: ReportRow) -> String {
        switch row.state {
        case WorkState.rejected.rawValue:
            // Explained from the server's key listing: who holds it, or why not.
            if let reason = row.lastError { return reason }
            return
                "the server refused this key (code 801: invalid or already assigned); check the key in the sales system"
        case WorkState.uncertain.rawValue:
            return
                "an earlier attempt may already have assigned this key, but the last answer was 801 (invalid or already assigned); "
                + "check on the license server who owns it before sending it again"
        case WorkState.failed.rawValue:
            if let code = row.code, code != 800, code != 801 {
                return "the server answered code \(code), which this call does not document; nothing was retried"
            }
            // The runner's error already says why it stopped ("gave up after 5 attempts: …", or
            // the permanent error itself).
            let why = row.lastError ?? "gave up after \(row.attempts) attempt\(row.attempts == 1 ? "" : "s")"
            return why + "; run `keyassign retry` once the cause is fixed"
        default:
            return row.lastError ?? row.state
        }
    }
}
