import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `--metrics-file PATH` on `run` and `sync`: how the night went, in the Prometheus text
/// exposition format, for node_exporter's textfile collector (docs/scheduling.md).
///
/// The numbers come from the run's `RunSummary` and from the database, never from counters
/// threaded through the runner: the file says what the summary and the work table say.
/// Every series is a gauge: each file describes one process, and a counter would be reset
/// by every run anyway.
public struct MetricsFile: Sendable {
    /// What one file holds; `render` turns it into text without touching anything.
    public struct Snapshot: Sendable, Equatable {
        /// The status the process exits with (sync's, which may differ from the run's).
        public var exitStatus: Int32
        /// Seconds from the command's start to its end (for `sync`, the import included).
        public var seconds: Double
        /// Unix seconds when the process ended.
        public var endedAt: Double
        /// Unix seconds of the last run that exited 0; nil when no run has (as far as the
        /// previous file remembers), written as 0 so that a staleness alert fires.
        public var lastSuccess: Double?
        /// Rows per state in the whole work table; nil when the database could not be read.
        public var rows: [WorkState: Int64]?
        /// Input rows the imports refused (`invalid_rows`), and those of them still open
        /// (`NeedsPerson`); nil when the database could not be read.
        public var invalidRows: Int64? = nil
        public var openInvalidRows: Int64? = nil
        /// Requests this run sent, by `attempts.outcome`; empty when no run took place.
        public var requests: [String: Int64]
        public var rateLimited: Int
        public var pauses: Int
        public var untrustedReplies: Int
        /// Rows still `failed` that this run did not touch (`RunSummary.failedEarlier`): earlier
        /// nights' final refusals, waiting for a person. nil when the run made no summary.
        public var failedEarlier: Int?
        /// Unix seconds when the quota that stopped the run reopens; nil when none did.
        public var quotaReopensAt: Double?

        public init(
            exitStatus: Int32, seconds: Double, endedAt: Double, lastSuccess: Double?,
            rows: [WorkState: Int64]?, requests: [String: Int64], rateLimited: Int, pauses: Int,
            untrustedReplies: Int, quotaReopensAt: Double? = nil
        ) {
            self.exitStatus = exitStatus
            self.seconds = seconds
            self.endedAt = endedAt
            self.lastSuccess = lastSuccess
            self.rows = rows
            self.requests = requests
            self.rateLimited = rateLimited
            self.pauses = pauses
            self.untrustedReplies = untrustedReplies
            self.quotaReopensAt = quotaReopensAt
        }
    }

    /// `attempts.outcome` values (`AttemptOutcome`) written even at zero, so that a rate() or
    /// an alert never sees a series appear from nowhere; any other outcome found in the
    /// database is written too.
    static let knownOutcomes = [
        AttemptOutcome.assigned, .rejected, .uncertain, .failed, .retry, .rateLimited, .authStop,
    ]
    .map(\.rawValue)

    static let lastSuccessName = "keyassign_last_success_timestamp_seconds"

    public let path: String

    /// Readable by the collector's group and user (docs/scheduling.md, "Monitoring").
    static let mode: mode_t = 0o644

    public init(path: String) {
        self.path = path
    }

    /// Writes the file for a `run` or `sync` that ends with `status`. `summary` is the run's
    /// when it got far enough to make one. The last-success time moves only when `status` is
    /// 0; otherwise the previous file's value is kept, so that "no success in 26 h" can fire.
    /// Throws `KeyAssignError(.ioError)` when the file cannot be written.
    public func record(
        status: ExitStatus, summary: RunSummary?, databasePath: String, seconds: Double,
        now: Double = Timestamps.now()
    ) throws {
        let previous = readPrevious().flatMap(MetricsFile.lastSuccess(in:))
        var rows: [WorkState: Int64]?
        var requests: [String: Int64] = [:]
        var invalid: Int64?
        var openInvalid: Int64?
        // The database is only read, never created: a run that could not open it has no rows to count.
        if let db = try? Database(path: databasePath, create: false) {
            if let report = try? StatusReport.load(from: db, lastRuns: 0) {
                rows = Dictionary(uniqueKeysWithValues: report.counts.map { ($0.state, $0.count) })
                invalid = report.invalidRows
                openInvalid = try? NeedsPerson.openInvalidRows(db)
            }
            if let summary {
                requests = (try? MetricsFile.requestsByOutcome(db, runID: summary.runID)) ?? [:]
            }
        }
        // A night stopped by a spent quota did what the quota allowed: it is a success to the
        // staleness alert, as to systemd (docs/scheduling.md).
        let succeeded = status == .ok || status == .quotaSpent
        var snapshot = Snapshot(
            exitStatus: status.rawValue, seconds: seconds, endedAt: now,
            lastSuccess: succeeded ? now : previous, rows: rows, requests: requests,
            rateLimited: summary?.rateLimited ?? 0, pauses: summary?.pauses ?? 0,
            untrustedReplies: summary?.untrustedReplies ?? 0,
            quotaReopensAt: summary?.quotaReopensAt)
        snapshot.failedEarlier = summary?.failedEarlier
        snapshot.invalidRows = invalid
        snapshot.openInvalidRows = openInvalid
        try writeAtomically(MetricsFile.render(snapshot))
    }

    /// The last step of `run` and `sync` on every exit path keyassign controls: writes the
    /// file when `path` is set and returns the status to exit with. A file that cannot be
    /// written turns a success into 74 (as `--summary-json` does): monitoring would otherwise
    /// go on showing the previous night.
    public static func finish(
        path: String?, status: ExitStatus, summary: RunSummary?, databasePath: String,
        startedAt: Double, logger: Logger
    ) -> ExitStatus {
        guard let path else { return status }
        do {
            // Also here: a configuration error before the check was made still ends here.
            try RegularFile.checkOutputPath(path, flag: "--metrics-file")
            try MetricsFile(path: path).record(
                status: status, summary: summary, databasePath: databasePath,
                seconds: Timestamps.monotonic() - startedAt)
            return status
        } catch {
            logger.error("\(error)")
            return status == .ok ? .ioError : status
        }
    }

    /// Served by the index `attempts_by_run`.
    static func requestsByOutcome(_ db: Database, runID: Int64) throws -> [String: Int64] {
        let statement = try db.prepare("SELECT outcome, count(*) FROM attempts WHERE run_id = ?1 GROUP BY outcome")
        try statement.bind(1, runID)
        var result: [String: Int64] = [:]
        while try statement.step() { result[statement.string(0) ?? "", default: 0] += statement.int(1) }
        return result
    }

    // MARK: the text

    public static func render(_ snapshot: Snapshot) -> String {
        var out = ""
        func series(_ name: String, _ help: String, _ samples: [(labels: String, value: String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
            for sample in samples { out += name + sample.labels + " " + sample.value + "\n" }
        }
        if let rows = snapshot.rows {
            series(
                "keyassign_rows", "Rows in the work table per state, after this run.",
                WorkState.allCases.map { ("{state=\"\($0.rawValue)\"}", String(rows[$0] ?? 0)) })
            // The same count as `status` and the HTML page (`NeedsPerson`): an input row that
            // could not be queued is a customer without a key as much as a failed one.
            let needing = NeedsPerson.states.reduce(0) { $0 + (rows[$1] ?? 0) } + (snapshot.openInvalidRows ?? 0)
            series(
                "keyassign_rows_needing_person",
                "Rows failed, uncertain, or invalid in the input and not since imported corrected: someone must decide (keyassign report --split DIR).",
                [("", String(needing))])
        }
        if let invalid = snapshot.invalidRows {
            series(
                "keyassign_invalid_rows",
                "Input rows the imports could not queue (keyassign report --invalid), ever; open ones count in keyassign_rows_needing_person.",
                [("", String(invalid))])
            series(
                "keyassign_invalid_rows_open",
                "Invalid input rows no later import has queued corrected: customers still without a key.",
                [("", String(snapshot.openInvalidRows ?? 0))])
        }
        var outcomes = knownOutcomes
        outcomes += snapshot.requests.keys.filter { !knownOutcomes.contains($0) }.sorted()
        series(
            "keyassign_run_requests", "Requests this run sent, by outcome (attempts.outcome).",
            outcomes.map { ("{outcome=\"\(escapeLabel($0))\"}", String(snapshot.requests[$0] ?? 0)) })
        series(
            "keyassign_run_rate_limited_replies", "Replies this run got with HTTP 429 (or code 429).",
            [("", String(snapshot.rateLimited))])
        series(
            "keyassign_run_rate_limit_pauses", "Times this run paused every sender after a 429.",
            [("", String(snapshot.pauses))])
        series(
            "keyassign_run_untrusted_replies", "Replies this run refused because their signature did not verify.",
            [("", String(snapshot.untrustedReplies))])
        if let failedEarlier = snapshot.failedEarlier {
            series(
                "keyassign_rows_failed_earlier",
                "Rows still failed that this run did not touch: refused for good on an earlier night, waiting for keyassign retry.",
                [("", String(failedEarlier))])
        }
        series(
            "keyassign_run_duration_seconds", "Seconds the run (for sync: import and run) took.",
            [("", number(snapshot.seconds))])
        series(
            "keyassign_run_exit_status", "The exit status of the run (see docs/scheduling.md).",
            [("", String(snapshot.exitStatus))])
        series(
            "keyassign_run_end_timestamp_seconds", "Unix time the run ended.",
            [("", number(snapshot.endedAt))])
        series(
            lastSuccessName, "Unix time of the last run that exited 0 (or 10, quota spent); 0 if none is known.",
            [("", number(snapshot.lastSuccess ?? 0))])
        series(
            "keyassign_quota_reopens_timestamp_seconds",
            "Unix time the server's quota that stopped this run (exit 10) reopens; 0 if no quota stopped it.",
            [("", number(snapshot.quotaReopensAt ?? 0))])
        return out
    }

    /// The last-success time a previous file holds, if it holds one.
    public static func lastSuccess(in text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(lastSuccessName + " ") {
            let value = line.dropFirst(lastSuccessName.count + 1).trimmingWhitespace()
            if let seconds = Double(value), seconds.isFinite, seconds > 0 { return seconds }
        }
        return nil
    }

    /// Plain decimal with millisecond precision: Prometheus parses any float, but people read these.
    static func number(_ value: Double) -> String {
        let millis = (value * 1000).rounded()
        let whole = Int64(millis / 1000)
        let fraction = Int64(abs(millis.truncatingRemainder(dividingBy: 1000)))
        if fraction == 0 { return String(whole) }
        var digits = String(fraction)
        digits = String(repeating: "0", count: 3 - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(whole).\(digits)"
    }

    /// Label values escape backslash, double quote and newline (the exposition format's rule).
    static func escapeLabel(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    // MARK: the file

    private func readPrevious() -> String? {
        // Never blocks on a FIFO: only a regular file is read.
        guard case .success(let fd) = RegularFile.openForReading(path) else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        // A metrics file is a few kB; a huge one is not ours, and its value is not trusted.
        while bytes.count < 1 << 20 {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A temporary file beside the target (same file system, so rename is atomic), created
    /// exclusively, synced, then renamed over the target: the collector reads either the old
    /// file or the new one, never half of one. Its name does not end in `.prom`, so the
    /// collector ignores it while it is being written.
    private func writeAtomically(_ text: String) throws {
        func failure(_ what: String) -> KeyAssignError {
            KeyAssignError(
                .ioError, "cannot write --metrics-file \(path): \(what): \(String(cString: strerror(errno)))")
        }
        let temporary = path + ".\(getpid()).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, Self.mode)
        if fd < 0 { throw failure("cannot create \(temporary)") }
        guard RegularFile.isRegular(fd) else {
            close(fd)
            throw KeyAssignError(.ioError, "cannot write --metrics-file \(path): \(temporary) is not a regular file")
        }
        // Whatever the umask (the unit's UMask=0027 would make it 0640, group keyassign):
        // node_exporter reads it as its own user and group (Debian: prometheus), and the file
        // holds counts only, no key, name or address.
        if fchmod(fd, Self.mode) != 0 {
            let error = failure("fchmod")
            close(fd)
            throw error
        }
        var ok = false
        defer {
            if !ok { unlink(temporary) }
        }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                let error = failure("write")
                close(fd)
                throw error
            }
            offset += n
        }
        if fsync(fd) != 0 {
            let error = failure("fsync")
            close(fd)
            throw error
        }
        close(fd)
        if rename(temporary, path) != 0 { throw failure("rename") }
        ok = true
        // The rename itself survives a power cut only once the directory is synced.
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let dirFD = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 {
            _ = fsync(dirFD)
            close(dirFD)
        }
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> Substring {
        var result = self
        while result.first?.isWhitespace == true { result.removeFirst() }
        while result.last?.isWhitespace == true { result.removeLast() }
        return result
    }
}
