/// `keyassign report --invalid`: the input rows that could not be queued, as CSV for sales
/// ops to fix in the export. Written through `CSVWriter`, so the raw text of a hostile row
/// cannot become a live formula in a spreadsheet.
public enum InvalidRowsReport {
    public static let header = ["source_file", "source_line", "reason", "license_key", "owner_name", "email", "raw"]

    /// Writes the header and one line per invalid row, in import order; returns the count.
    @discardableResult
    public static func write(from db: Database, raw: Bool = false, to write: @escaping (String) -> Void) throws -> Int {
        let csv = CSVWriter(raw: raw, sink: write)
        csv.writeRow(header)
        let statement = try db.prepare("""
            SELECT source_file, source_line, reason, license_key, owner_name, email, raw
            FROM invalid_rows ORDER BY id
            """)
        var count = 0
        while try statement.step() {
            csv.writeRow([statement.string(0), String(statement.int(1)), statement.string(2),
                          statement.string(3), statement.string(4), statement.string(5), statement.string(6)])
            count += 1
        }
        return count
    }
}
