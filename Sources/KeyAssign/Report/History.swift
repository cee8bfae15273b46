/// `keyassign history KEY`: every attempt for one license key — the answer to "did
/// customer X get their key?", with the evidence.
public enum History {
    public struct Attempt: Sendable, Equatable {
        public var attempt: Int64
        public var runID: Int64
        public var startedAt: String
        public var latencyMs: Double?
        public var httpStatus: Int64?
        public var code: Int64?
        public var outcome: String
        public var verdict: String?
        public var error: String?
        /// The configured key that verified the reply (file and SHA-256 of its DER
        /// SubjectPublicKeyInfo); nil unless the reply was trusted.
        public var signingKeyFile: String? = nil
        public var signingKeySHA256: String? = nil

        /// `sha256:… (/etc/keyassign/b.pem)`, or nil.
        var signingKeyText: String? {
            guard let signingKeySHA256 else { return nil }
            return "sha256:\(signingKeySHA256)" + (signingKeyFile.map { " (\($0))" } ?? "")
        }
    }

    /// What a stored key listing said about the key, and what was done with it.
    public struct Settlement: Sendable, Equatable {
        public var listingID: Int64
        /// When the listing was fetched (local) and signed (server), ISO 8601.
        public var fetchedAt: String
        public var signedAt: String
        public var said: String
        public var from: String
        public var to: String
        public var rule: String
        public var settledAt: String
    }

    public struct Entry: Sendable, Equatable {
        public var row: ReportRow
        public var maybeDelivered: Bool
        public var attempts: [Attempt]
        public var settlements: [Settlement] = []
    }

    /// Everything known about a key as support types it: the queued row (matched exactly,
    /// else ignoring case and surrounding spaces, as keys are read off screens and emails),
    /// and the input rows the import refused that hold it.
    public struct Found: Sendable {
        public var entries: [Entry]
        public var invalidRows: [InvalidRowsReport.Row]
        public var isEmpty: Bool { entries.isEmpty && invalidRows.isEmpty }
    }

    public static func find(key typed: String, in db: Database) throws -> Found {
        let key = typed.trimmingWhitespace()
        var entries: [Entry] = []
        if let exact = try lookup(key: key, in: db) {
            entries = [exact]
        } else {
            // A full scan, for a key not found as typed: fine for one interactive lookup.
            let similar = try db.prepare(
                """
                SELECT license_key FROM work WHERE lower(trim(license_key, ' 	')) = lower(?1) ORDER BY id LIMIT 20
                """)
            try similar.bind(1, key)
            var keys: [String] = []
            while try similar.step() { keys.append(similar.string(0) ?? "") }
            for stored in keys { if let entry = try lookup(key: stored, in: db) { entries.append(entry) } }
        }
        // Refused input rows: by the key kept with them, or, when the row could not be split
        // into fields (a wrong field count), by the key appearing in its raw text.
        let invalid = try db.prepare(
            """
            SELECT source_file, source_line, reason, license_key, owner_name, email, raw FROM invalid_rows
            WHERE lower(trim(license_key, ' 	')) = lower(?1)
               OR (license_key IS NULL AND ?1 <> '' AND instr(lower(raw), lower(?1)) > 0)
            ORDER BY id LIMIT 50
            """)
        try invalid.bind(1, key)
        var invalidRows: [InvalidRowsReport.Row] = []
        while try invalid.step() {
            invalidRows.append(
                InvalidRowsReport.Row(
                    sourceFile: invalid.string(0), sourceLine: invalid.int(1), reason: invalid.string(2),
                    licenseKey: invalid.string(3), ownerName: invalid.string(4), email: invalid.string(5),
                    raw: invalid.string(6)))
        }
        return Found(entries: entries, invalidRows: invalidRows)
    }

    /// The human rendering of everything `find` found.
    public static func render(_ found: Found) -> String {
        var parts = found.entries.map(render)
        for row in found.invalidRows {
            var lines = ["license key  \(row.licenseKey ?? "(not readable from the row; found in its text)")"]
            lines.append("owner        \(row.ownerName ?? "(no name)"), \(row.email ?? "(no email)")")
            lines.append("source       \(row.sourceFile ?? "?"):\(row.sourceLine)")
            lines.append(
                "state        invalid — the import refused this row, so it was never sent: \(row.reason ?? "")")
            lines.append(
                "next         correct line \(row.sourceLine) in the export (or in the shop), then import the corrected file"
            )
            lines.append(
                "raw          "
                    + (row.raw ?? "").replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(
                        of: "\n", with: "\\n"))
            parts.append(lines.joined(separator: "\n") + "\n")
        }
        return parts.joined(separator: "\n")
    }

    public static func lookup(key: String, in db: Database) throws -> Entry? {
        let rowQuery = try db.prepare(
            "SELECT \(RowReport.columns), id, maybe_delivered FROM work WHERE license_key = ?")
        try rowQuery.bind(1, key)
        guard try rowQuery.step() else { return nil }
        let row = ReportRow(rowQuery)
        let workID = rowQuery.int(10)
        let maybeDelivered = rowQuery.int(11) != 0

        let attemptsQuery = try db.prepare(
            """
            SELECT a.attempt, a.run_id, a.started_at, a.latency_ms, a.http_status, a.code, a.outcome, a.verdict,
                   a.error, coalesce(a.signing_key_file, k.file), coalesce(a.signing_key_sha256, k.sha256)
            FROM attempts a LEFT JOIN signed_replies r ON r.id = a.signed_reply_id
                LEFT JOIN signing_keys k ON k.id = r.signing_key_id
            WHERE a.work_id = ? ORDER BY a.id
            """)
        try attemptsQuery.bind(1, workID)
        var attempts: [Attempt] = []
        while try attemptsQuery.step() {
            attempts.append(
                Attempt(
                    attempt: attemptsQuery.int(0), runID: attemptsQuery.int(1),
                    startedAt: attemptsQuery.string(2) ?? "",
                    latencyMs: attemptsQuery.isNull(3) ? nil : attemptsQuery.double(3),
                    httpStatus: attemptsQuery.isNull(4) ? nil : attemptsQuery.int(4),
                    code: attemptsQuery.isNull(5) ? nil : attemptsQuery.int(5),
                    outcome: attemptsQuery.string(6) ?? "", verdict: attemptsQuery.string(7),
                    error: attemptsQuery.string(8), signingKeyFile: attemptsQuery.string(9),
                    signingKeySHA256: attemptsQuery.string(10)))
        }
        let settlementsQuery = try db.prepare(
            """
            SELECT s.listing_id, l.fetched_at, l.signed_at, s.entry, s.entry_index, s.from_state, s.to_state, s.rule, s.settled_at
            FROM settlements s JOIN listings l ON l.id = s.listing_id WHERE s.work_id = ? ORDER BY s.id
            """)
        try settlementsQuery.bind(1, workID)
        var settlements: [Settlement] = []
        while try settlementsQuery.step() {
            let said =
                settlementsQuery.string(3)
                .flatMap { ListingEntry.parse(storedText: $0, index: Int(settlementsQuery.int(4))) }
                .map { "entry \($0.index): \($0.summary)" } ?? "not listed (unknown to the server)"
            settlements.append(
                Settlement(
                    listingID: settlementsQuery.int(0), fetchedAt: settlementsQuery.string(1) ?? "",
                    signedAt: Timestamps.iso8601(Double(settlementsQuery.int(2))), said: said,
                    from: settlementsQuery.string(5) ?? "", to: settlementsQuery.string(6) ?? "",
                    rule: settlementsQuery.string(7) ?? "", settledAt: settlementsQuery.string(8) ?? ""))
        }
        return Entry(row: row, maybeDelivered: maybeDelivered, attempts: attempts, settlements: settlements)
    }

    /// The human rendering: the row, what its state means, then one line per attempt. Every
    /// text from outside (names, file names, the server's messages, a listing's entry) is
    /// shown through `TerminalText`: one line, one field, no control character.
    public static func render(_ entry: Entry) -> String {
        let row = entry.row
        let shown: (String) -> String = { TerminalText.escape($0) }
        var lines: [String] = []
        lines.append("license key  \(shown(row.licenseKey))")
        lines.append("owner        \(shown(row.ownerName ?? "(no name)")), \(shown(row.email ?? "(no email)"))")
        lines.append("source       \(shown(row.sourceFile)):\(row.sourceLine)")
        lines.append("state        \(shown(row.state)) — \(shown(meaning(of: row)))")
        // The question history answers is "did they get their key?": a row that is not
        // assigned may still have been, if an attempt reached the server unanswered.
        if entry.maybeDelivered && entry.settlements.isEmpty
            && row.state != WorkState.assigned.rawValue && row.state != WorkState.uncertain.rawValue
        {
            lines.append(
                "note         an earlier attempt may have reached the server without a verified answer: "
                    + "the key may be assigned already, and a later 801 will count as uncertain")
        }
        if entry.attempts.isEmpty {
            lines.append("attempts     none yet")
        }
        if !entry.settlements.isEmpty {
            lines.append("")
            lines.append(
                ["listing", "fetched (UTC)", "signed (UTC)", "what it said about the key", "change", "rule"]
                    .joined(separator: "\t"))
            for settlement in entry.settlements {
                let change =
                    settlement.from == settlement.to
                    ? "\(settlement.to) (explained)" : "\(settlement.from) -> \(settlement.to)"
                lines.append(
                    [
                        String(settlement.listingID), settlement.fetchedAt, settlement.signedAt, settlement.said,
                        change, settlement.rule,
                    ].map { shown($0) }.joined(separator: "\t"))
            }
        }
        if entry.attempts.isEmpty {
            return lines.joined(separator: "\n") + "\n"
        }
        lines.append("")
        lines.append(
            ["#", "run", "started (UTC)", "latency", "http", "code", "outcome", "signed reply", "signing key", "error"]
                .joined(separator: "\t"))
        for attempt in entry.attempts {
            let fields: [String] = [
                String(attempt.attempt), String(attempt.runID), attempt.startedAt,
                attempt.latencyMs.map { "\(Int($0.rounded())) ms" } ?? "-",
                attempt.httpStatus.map(String.init) ?? "-", attempt.code.map(String.init) ?? "-",
                attempt.outcome, attempt.verdict ?? "-", attempt.signingKeyText ?? "-", attempt.error ?? "",
            ]
            lines.append(fields.map { shown($0) }.joined(separator: "\t"))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func meaning(of row: ReportRow) -> String {
        switch WorkState(rawValue: row.state) {
        case .assigned where row.code != 800: "the server's signed key listing shows it held by this buyer"
        case .assigned: "the server assigned it (verified 800)"
        case .rejected where row.lastError != nil: "the server refused it: " + (row.lastError ?? "")
        case .rejected: "the server refused it (verified 801)"
        case .uncertain: "an earlier attempt may have assigned it; the last answer was 801"
        case .failed: "keyassign stopped trying: " + SplitReport.plainReason(row)
        case .retry: "waiting to be retried"
        case .inFlight: "a run is sending it now (or died while sending it)"
        case .pending: "queued, not sent yet"
        case nil: "unknown state"
        }
    }
}
