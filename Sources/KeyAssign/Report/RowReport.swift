/// One row of `keyassign report`: the work table as sales ops sees it. The field names are
/// part of the interface (JSONL keys and CSV header alike).
public struct ReportRow: Sendable, Equatable {
    public var licenseKey: String
    public var ownerName: String?
    public var email: String?
    public var state: String
    public var code: Int64?
    public var attempts: Int64
    public var lastError: String?
    public var sourceFile: String
    public var sourceLine: Int64
    public var updatedAt: String

    public static let fieldNames = [
        "license_key", "owner_name", "email", "state", "code", "attempts",
        "last_error", "source_file", "source_line", "updated_at",
    ]

    var csvFields: [String?] {
        [
            licenseKey, ownerName, email, state, code.map(String.init), String(attempts),
            lastError, sourceFile, String(sourceLine), updatedAt,
        ]
    }
}

extension ReportRow {
    /// The current row of a statement that selected `RowReport.columns` first.
    init(_ statement: Statement) {
        self.init(
            licenseKey: statement.string(0) ?? "", ownerName: statement.string(1), email: statement.string(2),
            state: statement.string(3) ?? "", code: statement.isNull(4) ? nil : statement.int(4),
            attempts: statement.int(5), lastError: statement.string(6), sourceFile: statement.string(7) ?? "",
            sourceLine: statement.int(8), updatedAt: statement.string(9) ?? "")
    }
}

public enum ReportFormat: String, Sendable, CaseIterable {
    case csv, jsonl
}

public enum RowReport {
    /// Streams the selected rows in import order (no state: every row) without holding the
    /// table in memory.
    public static func forEachRow(in db: Database, states: [WorkState], _ body: (ReportRow) throws -> Void) throws {
        let statement = try db.prepare(selectSQL(states: states))
        while try statement.step() {
            try body(ReportRow(statement))
        }
    }

    static func selectSQL(states: [WorkState]) -> String {
        var sql = "SELECT \(columns) FROM work"
        if !states.isEmpty {
            sql += " WHERE state IN (" + states.map { "'\($0.rawValue)'" }.joined(separator: ",") + ")"
        }
        return sql + " ORDER BY id"
    }

    /// The `work` columns a `ReportRow` is read from, in the order `ReportRow.init(_:)` reads
    /// them; a query may select more after them.
    static let columns = """
        license_key, owner_name, email, state, last_code, attempts, last_error, \(WorkSourcePath.sql), source_line,
        updated_at
        """

    /// The license keys in import order, all or those in one state.
    public static func licenseKeys(in db: Database, state: WorkState? = nil) throws -> [String] {
        let statement = try db.prepare("SELECT license_key FROM work WHERE ?1 IS NULL OR state = ?1 ORDER BY id")
        try statement.bind(1, state?.rawValue)
        var keys: [String] = []
        while try statement.step() {
            if let key = statement.string(0) { keys.append(key) }
        }
        return keys
    }

    /// Writes the rows in `format`; returns how many were written.
    ///
    /// The hot path of a report of a million rows: each field is encoded from SQLite's own
    /// buffer into one reused byte buffer, with no String or array per row or per field, and
    /// written out in 64 KiB pieces. The bytes are those `ReportRow.csvFields` through
    /// `CSVWriter` would give, and `JSONText` per field (RowReportEncodingTests holds it
    /// against the String-based rules it replaced). Figures: docs/benchmarks.md.
    @discardableResult
    public static func write(
        from db: Database, states: [WorkState], format: ReportFormat, raw: Bool,
        delimiter: CSVDelimiter = .comma, byteOrderMark: Bool = false,
        to output: TextOutput
    ) throws -> Int {
        let statement = try db.prepare(selectSQL(states: states))
        var buffer: [UInt8] = []
        buffer.reserveCapacity(flushSize + 4096)
        var count = 0
        if format == .csv {
            CSVWriter(raw: raw, delimiter: delimiter, byteOrderMark: byteOrderMark) { output.write($0) }
                .writeRow(ReportRow.fieldNames)
        }
        while try statement.step() {
            switch format {
            case .csv: appendCSV(statement, raw: raw, delimiter: delimiter.byte, to: &buffer)
            case .jsonl: appendJSON(statement, to: &buffer)
            }
            count += 1
            if buffer.count >= flushSize {
                buffer.withUnsafeBytes { output.write(bytes: $0) }
                buffer.removeAll(keepingCapacity: true)
            }
        }
        buffer.withUnsafeBytes { output.write(bytes: $0) }
        return count
    }

    static let flushSize = 1 << 16
    static var empty: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: nil, count: 0) }

    /// One CSV line from a statement that selected `columns` first: `ReportRow.csvFields`
    /// through `CSVWriter`, without the intermediate values.
    static func appendCSV(_ s: Statement, raw: Bool, delimiter comma: UInt8 = UInt8(ascii: ","), to out: inout [UInt8])
    {
        CSVWriter.appendField(s.text(0) ?? empty, raw: raw, delimiter: comma, to: &out)
        out.append(comma)
        CSVWriter.appendField(s.text(1) ?? empty, raw: raw, delimiter: comma, to: &out)
        out.append(comma)
        CSVWriter.appendField(s.text(2) ?? empty, raw: raw, delimiter: comma, to: &out)
        out.append(comma)
        CSVWriter.appendField(s.text(3) ?? empty, raw: raw, delimiter: comma, to: &out)
        out.append(comma)
        if !s.isNull(4) { CSVWriter.appendField(s.int(4), raw: raw, delimiter: comma, to: &out) }
        out.append(comma)
        CSVWriter.appendField(s.int(5), raw: raw, delimiter: comma, to: &out)
        out.append(comma)
        CSVWriter.appendField(s.text(6) ?? empty, raw: raw, delimiter: comma, to: &out)
        out.append(comma)
        CSVWriter.appendField(s.text(7) ?? empty, raw: raw, delimiter: comma, to: &out)
        out.append(comma)
        CSVWriter.appendField(s.int(8), raw: raw, delimiter: comma, to: &out)
        out.append(comma)
        CSVWriter.appendField(s.text(9) ?? empty, raw: raw, delimiter: comma, to: &out)
        out.append(13)
        out.append(10)
    }

    static let jsonKeys: [[UInt8]] = [
        "{\"license_key\":", ",\"owner_name\":", ",\"email\":", ",\"state\":", ",\"code\":", ",\"attempts\":",
        ",\"last_error\":", ",\"source_file\":", ",\"source_line\":", ",\"updated_at\":",
    ].map { Array($0.utf8) }

    /// One JSONL line: the `fieldNames` as keys, in order; `code` a number or null.
    static func appendJSON(_ s: Statement, to out: inout [UInt8]) {
        out.append(contentsOf: jsonKeys[0])
        JSONText.appendString(s.text(0) ?? empty, to: &out)
        out.append(contentsOf: jsonKeys[1])
        JSONText.appendString(s.text(1), to: &out)
        out.append(contentsOf: jsonKeys[2])
        JSONText.appendString(s.text(2), to: &out)
        out.append(contentsOf: jsonKeys[3])
        JSONText.appendString(s.text(3) ?? empty, to: &out)
        out.append(contentsOf: jsonKeys[4])
        if s.isNull(4) {
            out.append(contentsOf: JSONText.nullBytes)
        } else {
            withDecimal(s.int(4)) { out.append(contentsOf: $0) }
        }
        out.append(contentsOf: jsonKeys[5])
        withDecimal(s.int(5)) { out.append(contentsOf: $0) }
        out.append(contentsOf: jsonKeys[6])
        JSONText.appendString(s.text(6), to: &out)
        out.append(contentsOf: jsonKeys[7])
        JSONText.appendString(s.text(7) ?? empty, to: &out)
        out.append(contentsOf: jsonKeys[8])
        withDecimal(s.int(8)) { out.append(contentsOf: $0) }
        out.append(contentsOf: jsonKeys[9])
        JSONText.appendString(s.text(9) ?? empty, to: &out)
        out.append(UInt8(ascii: "}"))
        out.append(10)
    }
}
