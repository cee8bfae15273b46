/// `keyassign report --invalid`: the input rows that could not be queued, as CSV for sales
/// ops to fix in the export. Written through `CSVWriter`, so the raw text of a hostile row
/// cannot become a live formula in a spreadsheet.
public enum InvalidRowsReport {
    public static let header = ["source_file", "source_line", "reason", "license_key", "owner_name", "email", "raw"]

    /// One input row the import refused, as `invalid_rows` keeps it.
    public struct Row: Sendable {
        public var sourceFile: String?
        public var sourceLine: Int64
        public var reason: String?
        public var licenseKey: String?
        public var ownerName: String?
        public var email: String?
        public var raw: String?
    }

    /// Streams the invalid rows in import order.
    public static func forEachRow(in db: Database, _ body: (Row) throws -> Void) throws {
        let statement = try db.prepare(
            """
            SELECT source_file, source_line, reason, license_key, owner_name, email, raw
            FROM invalid_rows ORDER BY id
            """)
        while try statement.step() {
            try body(
                Row(
                    sourceFile: statement.string(0), sourceLine: statement.int(1), reason: statement.string(2),
                    licenseKey: statement.string(3), ownerName: statement.string(4), email: statement.string(5),
                    raw: statement.string(6)))
        }
    }

    /// Writes the header and one line per invalid row, in import order; returns the count.
    @discardableResult
    public static func write(
        from db: Database, raw: Bool = false, delimiter: CSVDelimiter = .comma,
        byteOrderMark: Bool = false, to write: @escaping (String) -> Void
    ) throws -> Int {
        let csv = CSVWriter(raw: raw, delimiter: delimiter, byteOrderMark: byteOrderMark, sink: write)
        csv.writeRow(header)
        var count = 0
        try forEachRow(in: db) { row in
            csv.writeRow([
                row.sourceFile, String(row.sourceLine), row.reason, row.licenseKey, row.ownerName,
                row.email, row.raw,
            ])
            count += 1
        }
        return count
    }
}
