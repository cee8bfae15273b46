/// `keyassign status`: how many rows are in each state, and what was imported.
public struct StatusReport: Sendable, Equatable {
    /// Every state of `work.state`, in the order a row goes through them.
    public static let states = ["pending", "in_flight", "retry", "assigned", "rejected", "uncertain", "failed"]

    /// Count per state, every state present (zeros included).
    public var counts: [(state: String, count: Int64)]
    public var invalidRows: Int64
    public var imports: Int64

    public static func == (a: StatusReport, b: StatusReport) -> Bool {
        a.counts.map(\.state) == b.counts.map(\.state) && a.counts.map(\.count) == b.counts.map(\.count)
            && a.invalidRows == b.invalidRows && a.imports == b.imports
    }

    public var total: Int64 { counts.reduce(0) { $0 + $1.count } }

    public static func load(from db: Database) throws -> StatusReport {
        var byState: [String: Int64] = [:]
        let statement = try db.prepare("SELECT state, count(*) FROM work GROUP BY state")
        while try statement.step() {
            if let state = statement.string(0) { byState[state] = statement.int(1) }
        }
        return StatusReport(counts: states.map { ($0, byState[$0] ?? 0) },
                            invalidRows: try db.scalarInt("SELECT count(*) FROM invalid_rows") ?? 0,
                            imports: try db.scalarInt("SELECT count(*) FROM imports") ?? 0)
    }

    /// Aligned `name  count` lines.
    public func render() -> String {
        var rows = counts.map { ($0.state, $0.count) }
        rows.append(("total", total))
        rows.append(("invalid rows", invalidRows))
        rows.append(("imports", imports))
        let width = rows.map(\.0.count).max() ?? 0
        let numbers = rows.map { String($0.1) }
        let numberWidth = numbers.map(\.count).max() ?? 0
        return zip(rows, numbers).map { row, number in
            row.0 + String(repeating: " ", count: width - row.0.count + 2)
                + String(repeating: " ", count: numberWidth - number.count) + number
        }.joined(separator: "\n")
    }
}
