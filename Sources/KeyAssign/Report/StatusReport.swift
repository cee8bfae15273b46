/// `keyassign status`: how many rows are in each state, what was imported, and how the
/// last runs ended.
public struct StatusReport: Sendable, Equatable {
    public struct Count: Sendable, Equatable {
        public var state: WorkState
        public var count: Int64
    }

    public struct Run: Sendable, Equatable {
        public var id: Int64
        public var startedAt: String
        public var endedAt: String?
        public var rowsDone: Int64
        public var exitStatus: Int64?
    }

    /// Count per state, every state present (zeros included), in the order a row goes through them.
    public var counts: [Count]
    public var invalidRows: Int64
    /// Rows that need a person (`NeedsPerson`): the same number as the HTML page's and
    /// `keyassign_rows_needing_person`.
    public var needingPerson: Int64 = 0
    public var imports: Int64
    /// `failed` rows refused for good (a verified code, a 4xx other than 408/429): they wait for
    /// `keyassign retry`, however many nights pass (`FailureKind`).
    public var failedFinal: Int64 = 0
    /// `failed` rows that failed for a passing reason: the next run sends them again.
    public var failedPassing: Int64 = 0
    /// The most recent runs, newest first.
    public var runs: [Run]

    public var total: Int64 { counts.reduce(0) { $0 + $1.count } }

    /// Rows per state, but for `assigned` (the rest of `work_total`).
    static let countsSQL = """
        SELECT state, count(*) FROM work WHERE state IN ('pending', 'in_flight', 'retry') GROUP BY state
        UNION ALL
        SELECT state, count(*) FROM work WHERE state = 'uncertain' OR state = 'rejected' OR state = 'failed'
        GROUP BY state
        """

    public static func load(from db: Database, lastRuns: Int = 5) throws -> StatusReport {
        var byState: [String: Int64] = [:]
        // Without a scan of `work` (migration 9): the states with work left from `work_due`,
        // the unsettled ones from `work_unsettled`, and `assigned` the rest of `work_total`.
        let statement = try db.prepare(Self.countsSQL)
        var others: Int64 = 0
        while try statement.step() {
            if let state = statement.string(0) {
                byState[state] = statement.int(1)
                others += statement.int(1)
            }
        }
        let total = try db.scalarInt("SELECT rows FROM work_total WHERE id = 1") ?? 0
        byState[WorkState.assigned.rawValue] = total - others
        let runsQuery = try db.prepare(
            """
            SELECT id, started_at, ended_at, rows_done, exit_status FROM runs ORDER BY id DESC LIMIT ?
            """)
        try runsQuery.bind(1, Int64(lastRuns))
        var runs: [Run] = []
        while try runsQuery.step() {
            runs.append(
                Run(
                    id: runsQuery.int(0), startedAt: runsQuery.string(1) ?? "", endedAt: runsQuery.string(2),
                    rowsDone: runsQuery.int(3), exitStatus: runsQuery.isNull(4) ? nil : runsQuery.int(4)))
        }
        var report = StatusReport(
            counts: WorkState.allCases.map { Count(state: $0, count: byState[$0.rawValue] ?? 0) },
            invalidRows: try db.scalarInt("SELECT count(*) FROM invalid_rows") ?? 0,
            needingPerson: try NeedsPerson.count(db),
            imports: try db.scalarInt("SELECT count(*) FROM imports") ?? 0,
            runs: runs)
        if (byState[WorkState.failed.rawValue] ?? 0) > 0 {
            (report.failedFinal, report.failedPassing) = try FailureKind.counts(in: db)
        }
        return report
    }

    /// Aligned `name  count` lines, then the last runs.
    public func render() -> String {
        var rows = counts.map { ($0.state.rawValue, $0.count) }
        rows.append(("total", total))
        rows.append(("invalid rows", invalidRows))
        rows.append(("imports", imports))
        if failedFinal + failedPassing > 0 {
            rows.append(("failed, final: keyassign retry", failedFinal))
            rows.append(("failed, the next run retries", failedPassing))
        }
        rows.append(("need a person", needingPerson))
        let width = rows.map(\.0.count).max() ?? 0
        let numbers = rows.map { String($0.1) }
        let numberWidth = numbers.map(\.count).max() ?? 0
        var lines = zip(rows, numbers).map { row, number in
            row.0 + String(repeating: " ", count: width - row.0.count + 2)
                + String(repeating: " ", count: numberWidth - number.count) + number
        }
        if !runs.isEmpty {
            lines.append("")
            lines.append("last runs (newest first):")
            for run in runs {
                let end = run.endedAt ?? "still running, or died"
                let status = run.exitStatus.map { "exit \($0)" } ?? "no exit status"
                // Times are text in a file others may have written: shown escaped, like all outside text.
                lines.append(
                    "  run \(run.id)  \(TerminalText.escape(run.startedAt)) → \(TerminalText.escape(end))  \(run.rowsDone) rows done  \(status)"
                )
            }
        }
        return lines.joined(separator: "\n")
    }

    /// One JSON object: `{"states":{"pending":0,…},"total":…,"invalid_rows":…,"needs_person":…,"imports":…,"runs":[…]}`.
    public func json() -> String {
        let states = counts.map { "\(JSONText.string($0.state.rawValue)):\($0.count)" }.joined(separator: ",")
        let runsJSON = runs.map { run in
            "{\"id\":\(run.id),\"started_at\":\(JSONText.string(run.startedAt)),\"ended_at\":\(JSONText.string(run.endedAt)),"
                + "\"rows_done\":\(run.rowsDone),\"exit_status\":\(JSONText.number(run.exitStatus))}"
        }.joined(separator: ",")
        return
            "{\"states\":{\(states)},\"total\":\(total),\"invalid_rows\":\(invalidRows),\"needs_person\":\(needingPerson),\"imports\":\(imports),"
            + "\"failed_final\":\(failedFinal),\"failed_passing\":\(failedPassing),\"runs\":[\(runsJSON)]}"
    }
}
