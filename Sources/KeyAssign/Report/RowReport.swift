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
        [licenseKey, ownerName, email, state, code.map(String.init), String(attempts),
         lastError, sourceFile, String(sourceLine), updatedAt]
    }

    var jsonLine: String {
        "{\"license_key\":\(JSONText.string(licenseKey)),\"owner_name\":\(JSONText.string(ownerName)),"
            + "\"email\":\(JSONText.string(email)),\"state\":\(JSONText.string(state)),"
            + "\"code\":\(JSONText.number(code)),\"attempts\":\(attempts),"
            + "\"last_error\":\(JSONText.string(lastError)),\"source_file\":\(JSONText.string(sourceFile)),"
            + "\"source_line\":\(sourceLine),\"updated_at\":\(JSONText.string(updatedAt))}"
    }
}

extension ReportRow {
    /// The current row of a statement that selected `RowReport.columns` first.
    init(_ statement: Statement) {
        self.init(licenseKey: statement.string(0) ?? "", ownerName: statement.string(1), email: statement.string(2),
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
        var sql = "SELECT \(columns) FROM work"
        if !states.isEmpty {
            sql += " WHERE state IN (" + states.map { "'\($0.rawValue)'" }.joined(separator: ",") + ")"
        }
        sql += " ORDER BY id"
        let statement = try db.prepare(sql)
        while try statement.step() {
            try body(ReportRow(statement))
        }
    }

    /// The `work` columns a `ReportRow` is read from, in the order `ReportRow.init(_:)` reads
    /// them; a query may select more after them.
    static let columns = """
        license_key, owner_name, email, state, last_code, attempts, last_error, source_file, source_line, updated_at
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
    @discardableResult
    public static func write(from db: Database, states: [WorkState], format: ReportFormat, raw: Bool,
                             to output: TextOutput) throws -> Int {
        var count = 0
        switch format {
        case .csv:
            let csv = CSVWriter(raw: raw) { output.write($0) }
            csv.writeRow(ReportRow.fieldNames)
            try forEachRow(in: db, states: states) { row in
                csv.writeRow(row.csvFields)
                count += 1
            }
        case .jsonl:
            try forEachRow(in: db, states: states) { row in
                output.write(row.jsonLine + "\n")
                count += 1
            }
        }
        return count
    }
}
