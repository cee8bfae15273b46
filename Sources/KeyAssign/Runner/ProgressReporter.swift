import Dispatch
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Progress on stderr: a live line on a terminal, a log line every 10 s otherwise (cron mail
/// should show a run was alive, not thousands of lines).
///
/// The live line is cut to the terminal's width, never wrapped (a wrapped line cannot be
/// redrawn in place: every update would print a new one); log lines written meanwhile get a
/// line of their own (`LiveLine`). Its counts are rows, not attempts: assigned, rejected,
/// uncertain and failed add up to the rows done, and the final line is drawn after the run's
/// reconciliation, from the rows' states then, so a row the listing settled has left
/// `uncertain`. While the server is unreachable it says so, rather than "0 rows/s".
final class ProgressReporter: Sendable {
    struct Snapshot {
        /// Rows that reached a final state this run.
        var finished: Int
        var requests: Int
        var inFlight: Int
        /// Rows per final state (assigned, rejected, uncertain, failed); they add up to `finished`.
        var rows: [WorkState: Int]
        /// Attempts that left their row due for a retry.
        var retries: Int
        var rateLimited: Int
        /// Set while the circuit breaker holds: how long nothing could be sent, and why.
        var unreachable: (seconds: Int, lastError: String)? = nil
    }

    private let live: Bool
    private let enabled: Bool
    private let total: Int
    private let logger: Logger
    private let sample: @Sendable () -> Snapshot
    private let started = Timestamps.monotonic()
    private let timer = Mutex<(any DispatchSourceTimer)?>(nil)
    private let stopped = Mutex(false)
    /// The terminal's width, asked for at each update (a resized window is followed).
    private let columns: @Sendable () -> Int

    init(
        mode: ProgressMode, total: Int, logger: Logger,
        columns: @escaping @Sendable () -> Int = ProgressReporter.terminalColumns,
        sample: @escaping @Sendable () -> Snapshot
    ) {
        switch mode {
        case .quiet: (enabled, live) = (false, false)
        case .liveLine: (enabled, live) = (true, true)
        case .periodicLog: (enabled, live) = (true, false)
        case .automatic: (enabled, live) = (true, isatty(2) != 0)
        }
        self.total = total
        self.logger = logger
        self.columns = columns
        self.sample = sample
    }

    func start() {
        guard enabled else { return }
        let interval: DispatchTimeInterval = live ? .milliseconds(500) : .seconds(10)
        timer.withLock { slot in
            let timer = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
            timer.schedule(deadline: .now() + interval, repeating: interval)
            timer.setEventHandler { [self] in tick() }
            timer.resume()
            slot = timer
        }
    }

    /// Ends the progress: the last line, with the rows' states as they are now (`settled`,
    /// read after the reconciliation) when given. Only the first call does anything.
    func stop(settled: [WorkState: Int]? = nil) {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        let timer = self.timer.withLock { timer in
            defer { timer = nil }
            return timer
        }
        timer?.cancel()
        if enabled && live {
            var snapshot = sample()
            if let settled {
                snapshot.rows = settled
                snapshot.finished = settled.values.reduce(0, +)
            }
            LiveLine.standardError.finish(Self.cut(TerminalText.escape(render(snapshot)), to: columns()))
        }
    }

    /// The run's rows in a final state, by their state now: what the last line shows.
    static func rowsByState(_ db: Database, runID: Int64) throws -> [WorkState: Int] {
        // attempts_by_run (run_id, work_id) finds the run's rows.
        let statement = try db.prepare(
            """
            SELECT state, count(*) FROM work WHERE id IN (SELECT work_id FROM attempts WHERE run_id = ?1)
                AND state IN ('assigned', 'rejected', 'uncertain', 'failed') GROUP BY state
            """)
        try statement.bind(1, runID)
        var rows: [WorkState: Int] = [:]
        while try statement.step() {
            if let state = WorkState(rawValue: statement.string(0) ?? "") { rows[state] = Int(statement.int(1)) }
        }
        return rows
    }

    private func tick() {
        if stopped.withLock({ $0 }) { return }
        let line = render(sample())
        if live {
            // Escaped like every line on the terminal (`TerminalText`): it quotes a server's error.
            LiveLine.standardError.draw(Self.cut(TerminalText.escape(line), to: columns()))
        } else {
            logger.info("\(line)")
        }
    }

    func render(_ s: Snapshot) -> String {
        let elapsed = max(0.001, Timestamps.monotonic() - started)
        let rate = Double(s.finished) / elapsed
        let percent = total > 0 ? Double(s.finished) * 100 / Double(total) : 100
        var head = "\(s.finished)/\(total) (\(String(format: "%.1f", percent))%) "
        if let unreachable = s.unreachable {
            head += "server unreachable for \(unreachable.seconds) s, probing"
        } else {
            var eta = "--:--"
            if rate > 0 && total > s.finished {
                let seconds = Int((Double(total - s.finished) / rate).rounded())
                eta =
                    seconds >= 3600
                    ? "\(seconds / 3600)h\(pad((seconds % 3600) / 60))m" : "\(seconds / 60):\(pad(seconds % 60))"
            }
            head += "\(String(format: "%.0f", rate)) rows/s ETA \(eta)"
        }
        func count(_ state: WorkState) -> Int { s.rows[state] ?? 0 }
        return head
            + " | assigned \(count(.assigned)) rejected \(count(.rejected)) uncertain \(count(.uncertain)) failed \(count(.failed))"
            + " | retries \(s.retries) 429 \(s.rateLimited) in flight \(s.inFlight)"
            + (s.unreachable.map { " | last: \($0.lastError)" } ?? "")
    }

    private func pad(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }

    /// At most `columns - 1` characters: a line that fills the last column makes some
    /// terminals wrap it, and then `\r` no longer returns to its start.
    static func cut(_ line: String, to columns: Int) -> String {
        let width = max(10, columns) - 1
        guard line.count > width else { return line }
        return String(line.prefix(width - 1)) + "…"
    }

    /// The width of the terminal on stderr; else $COLUMNS; else 80.
    @Sendable static func terminalColumns() -> Int {
        var size = winsize()
        if ioctl(2, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 { return Int(size.ws_col) }
        if let text = ProcessInfo.processInfo.environment["COLUMNS"], let value = Int(text), value > 0 { return value }
        return 80
    }
}
