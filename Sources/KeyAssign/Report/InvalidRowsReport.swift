/// `keyassign report --invalid`: the rows that could not be queued, as CSV for sales ops to
/// fix in the export (RFC 4180: a field is quoted when it holds a comma, quote, line break or
/// edge whitespace; quotes doubled; CRLF line ends).
public enum InvalidRowsReport {
    public static let header = ["source_file", "source_line", "reason", "license_key", "owner_name", "email", "raw"]

    /// Writes the header and one line per invalid row, in import order, each line to `write`.
    public static func write(from db: Database, to write: (String) -> Void) throws {
        write(csvLine(header))
        let statement = try db.prepare("""
            SELECT source_file, source_line, reason, license_key, owner_name, email, raw
            FROM invalid_rows ORDER BY id
            """)
        while try statement.step() {
            write(csvLine([
                statement.string(0) ?? "",
                String(statement.int(1)),
                statement.string(2) ?? "",
                statement.string(3) ?? "",
                statement.string(4) ?? "",
                statement.string(5) ?? "",
                statement.string(6) ?? "",
            ]))
        }
    }

    public static func csvLine(_ fields: [String]) -> String {
        fields.map(csvField).joined(separator: ",") + "\r\n"
    }

    static func csvField(_ value: String) -> String {
        let needsQuotes = value.utf8.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 0x0A || $0 == 0x0D }
            || value.first?.isWhitespace == true || value.last?.isWhitespace == true
        guard needsQuotes else { return value }
        return "\"" + String(value.flatMap { $0 == "\"" ? ["\"", "\""] : [$0] }) + "\""
    }
}
