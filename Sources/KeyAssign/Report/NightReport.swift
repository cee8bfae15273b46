/// What `report --html` shows, read from the work database in one place so that the page
/// itself (`HTMLReport`) is a pure function of this value.
public struct NightReport: Sendable, Equatable {
    /// One run and what its attempts came to, by `attempts.outcome`.
    public struct RunOutcomes: Sendable, Equatable {
        public var id: Int64
        public var startedAt: String
        public var endedAt: String?
        public var exitStatus: Int64?
        public var rowsDone: Int64
        /// Attempts per outcome (`AttemptOutcome`'s raw values); an outcome with no attempts is
        /// absent.
        public var outcomes: [String: Int64]

        public init(
            id: Int64, startedAt: String, endedAt: String? = nil, exitStatus: Int64? = nil,
            rowsDone: Int64 = 0, outcomes: [String: Int64]
        ) {
            self.id = id
            self.startedAt = startedAt
            self.endedAt = endedAt
            self.exitStatus = exitStatus
            self.rowsDone = rowsDone
            self.outcomes = outcomes
        }

        public var attempts: Int64 { outcomes.values.reduce(0, +) }
    }

    /// Rows per state of one source file, and its input rows that could not be queued.
    public struct SourceFile: Sendable, Equatable {
        public var path: String
        public var counts: [WorkState: Int64]
        public var invalid: Int64

        public init(path: String, counts: [WorkState: Int64], invalid: Int64) {
            self.path = path
            self.counts = counts
            self.invalid = invalid
        }

        public var queued: Int64 { counts.values.reduce(0, +) }
    }

    /// A key the server refused (verified 801), and who holds it now when reconciliation
    /// has found out.
    public struct RefusedRow: Sendable, Equatable {
        public var row: ReportRow
        /// Nil until reconciliation data exists for the key (see `NightReport.load`).
        public var currentOwner: String?

        public init(row: ReportRow, currentOwner: String? = nil) {
            self.row = row
            self.currentOwner = currentOwner
        }
    }

    /// A list the page shows at most `limit` entries of, with the true total.
    public struct Capped<Element: Sendable & Equatable>: Sendable, Equatable {
        public var items: [Element]
        public var total: Int64

        public init(items: [Element], total: Int64) {
            self.items = items
            self.total = total
        }

        public var omitted: Int64 { max(0, total - Int64(items.count)) }
    }

    public var databasePath: String
    public var generatedAt: String
    public var status: StatusReport
    /// The last runs, oldest first (the chart reads left to right).
    public var runs: [RunOutcomes]
    public var sources: [SourceFile]
    public var needsPerson: Capped<ActionItem>
    public var refused: Capped<RefusedRow>

    public init(
        databasePath: String, generatedAt: String, status: StatusReport, runs: [RunOutcomes],
        sources: [SourceFile], needsPerson: Capped<ActionItem>, refused: Capped<RefusedRow>
    ) {
        self.databasePath = databasePath
        self.generatedAt = generatedAt
        self.status = status
        self.runs = runs
        self.sources = sources
        self.needsPerson = needsPerson
        self.refused = refused
    }

    /// How many runs the chart shows.
    public static let chartRuns = 30

    /// Reads the page's data. `limit` caps each list of rows (a page of a million rows helps
    /// nobody; the page says how many more there are and how to get them all).
    public static func load(
        from db: Database, generatedAt: String = Timestamps.nowISO8601(),
        limit: Int = 500
    ) throws -> NightReport {
        NightReport(
            databasePath: db.path, generatedAt: generatedAt,
            status: try StatusReport.load(from: db, lastRuns: 1),
            runs: try loadRuns(db), sources: try loadSources(db),
            needsPerson: try loadNeedsPerson(db, databasePath: db.path, limit: limit),
            refused: try loadRefused(db, limit: limit))
    }

    static func loadRuns(_ db: Database) throws -> [RunOutcomes] {
        let runsQuery = try db.prepare(
            """
            SELECT id, started_at, ended_at, exit_status, rows_done FROM runs ORDER BY id DESC LIMIT ?
            """)
        try runsQuery.bind(1, Int64(chartRuns))
        var runs: [RunOutcomes] = []
        while try runsQuery.step() {
            runs.append(
                RunOutcomes(
                    id: runsQuery.int(0), startedAt: runsQuery.string(1) ?? "", endedAt: runsQuery.string(2),
                    exitStatus: runsQuery.isNull(3) ? nil : runsQuery.int(3), rowsDone: runsQuery.int(4),
                    outcomes: [:]))
        }
        runs.reverse()
        guard let first = runs.first else { return [] }
        // attempts_by_run (run_id, work_id) bounds this to the shown runs' attempts.
        let outcomes = try db.prepare(
            """
            SELECT run_id, outcome, count(*) FROM attempts WHERE run_id >= ? GROUP BY run_id, outcome
            """)
        try outcomes.bind(1, first.id)
        let index = Dictionary(uniqueKeysWithValues: runs.enumerated().map { ($0.element.id, $0.offset) })
        while try outcomes.step() {
            guard let position = index[outcomes.int(0)] else { continue }
            runs[position].outcomes[outcomes.string(1) ?? "", default: 0] += outcomes.int(2)
        }
        return runs
    }

    static func loadSources(_ db: Database) throws -> [SourceFile] {
        var byPath: [String: (order: Int64, file: SourceFile)] = [:]
        let work = try db.prepare(
            """
            SELECT \(WorkSourcePath.sql) AS path, state, count(*), min(id) FROM work GROUP BY path, state
            """)
        while try work.step() {
            let path = work.string(0) ?? ""
            var entry = byPath[path] ?? (work.int(3), SourceFile(path: path, counts: [:], invalid: 0))
            entry.order = min(entry.order, work.int(3))
            if let state = WorkState(rawValue: work.string(1) ?? "") {
                entry.file.counts[state, default: 0] += work.int(2)
            }
            byPath[path] = entry
        }
        // A file whose every row was invalid has no work rows; it still gets its table.
        let invalid = try db.prepare("SELECT source_file, count(*) FROM invalid_rows GROUP BY source_file")
        while try invalid.step() {
            let path = invalid.string(0) ?? ""
            var entry = byPath[path] ?? (Int64.max, SourceFile(path: path, counts: [:], invalid: 0))
            entry.file.invalid += invalid.int(1)
            byPath[path] = entry
        }
        return byPath.values.sorted { ($0.order, $0.file.path) < ($1.order, $1.file.path) }.map(\.file)
    }

    static func loadNeedsPerson(_ db: Database, databasePath: String, limit: Int) throws -> Capped<ActionItem> {
        var items: [ActionItem] = []
        let rows = try db.prepare(
            """
            SELECT \(RowReport.columns) FROM work WHERE \(NeedsPerson.statesCondition) ORDER BY id LIMIT ?
            """)
        try rows.bind(1, Int64(limit))
        while try rows.step() {
            items.append(ActionItem(row: ReportRow(rows), databasePath: databasePath))
        }
        if items.count < limit {
            let invalid = try db.prepare(
                """
                SELECT source_file, source_line, reason, license_key, owner_name, email FROM invalid_rows r
                WHERE \(NeedsPerson.openInvalidRowCondition) ORDER BY id LIMIT ?
                """)
            try invalid.bind(1, Int64(limit - items.count))
            while try invalid.step() {
                items.append(
                    ActionItem(
                        invalidSourceFile: invalid.string(0) ?? "", sourceLine: invalid.int(1),
                        reason: invalid.string(2) ?? "", licenseKey: invalid.string(3),
                        ownerName: invalid.string(4), email: invalid.string(5),
                        databasePath: databasePath))
            }
        }
        let total = try NeedsPerson.count(db)
        return Capped(items: items, total: total)
    }

    static func loadRefused(_ db: Database, limit: Int) throws -> Capped<RefusedRow> {
        // The row's settlement, if its last change was one (as `audit` and `history` read it):
        // what the server's signed listing said about the key when it explained the refusal.
        let rows = try db.prepare(
            """
            SELECT \(RowReport.columns), s.entry, s.entry_index, s.listing_id FROM work w
            LEFT JOIN settlements s ON s.id = (SELECT max(id) FROM settlements
                                               WHERE work_id = w.id AND settled_at = w.updated_at)
            WHERE w.state = 'rejected' ORDER BY w.id LIMIT ?
            """)
        try rows.bind(1, Int64(limit))
        var items: [RefusedRow] = []
        while try rows.step() {
            let row = ReportRow(rows)
            var owner: String?
            if !rows.isNull(12) {
                let listing = " (listing \(rows.int(12)))"
                if let text = rows.string(10) {
                    owner = ListingEntry.parse(storedText: text, index: Int(rows.int(11))).map {
                        Self.currentOwner($0) + listing
                    }
                } else {
                    owner = "unknown to the server" + listing
                }
            }
            items.append(RefusedRow(row: row, currentOwner: owner))
        }
        let total = try db.scalarInt("SELECT count(*) FROM work WHERE state = 'rejected'") ?? 0
        return Capped(items: items, total: total)
    }

    /// Who holds the key by a listing entry, in the words the reconcile reasons use.
    static func currentOwner(_ entry: ListingEntry) -> String {
        switch ReconcileRules.normalized(entry.status) {
        case "available": return "nobody: the key is available"
        default:
            guard
                ReconcileRules.normalized(entry.ownerEmail) != nil || ReconcileRules.normalized(entry.ownerName) != nil
            else {
                return "nobody: the key is \(entry.status ?? "listed without a status")"
            }
            return ReconcileRules.owner(entry) + (entry.assignedAt.map { " since \($0)" } ?? "")
        }
    }
}
