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
final class ProgressReporter: Sendable {
    struct Snapshot {
        var finished: Int
        var requests: Int
        var inFlight: Int
        var outcomes: [AttemptOutcome: Int]
        var rateLimited: Int
    }

    private let live: Bool
    private let enabled: Bool
    private let total: Int
    private let logger: Logger
    private let sample: @Sendable () -> Snapshot
    private let started = Timestamps.monotonic()
    private let timer = Mutex<(any DispatchSourceTimer)?>(nil)

    init(mode: ProgressMode, total: Int, logger: Logger, sample: @escaping @Sendable () -> Snapshot) {
        switch mode {
        case .quiet: (enabled, live) = (false, false)
        case .liveLine: (enabled, live) = (true, true)
        case .periodicLog: (enabled, live) = (true, false)
        case .automatic: (enabled, live) = (true, isatty(2) != 0)
        }
        self.total = total
        self.logger = logger
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

    func stop() {
        let timer = self.timer.withLock { timer in
            defer { timer = nil }
            return timer
        }
        timer?.cancel()
        if enabled && live {
            tick()
            FileHandle.standardError.write(Data("\n".utf8))
        }
    }

    private func tick() {
        let line = render(sample())
        if live {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + TerminalText.escape(line)).utf8))
        } else {
            logger.info("\(line)")
        }
    }

    func render(_ s: Snapshot) -> String {
        let elapsed = max(0.001, Timestamps.monotonic() - started)
        let rate = Double(s.finished) / elapsed
        let percent = total > 0 ? Double(s.finished) * 100 / Double(total) : 100
        var eta = "--:--"
        if rate > 0 && total > s.finished {
            let seconds = Int((Double(total - s.finished) / rate).rounded())
            eta = seconds >= 3600 ? "\(seconds / 3600)h\(pad((seconds % 3600) / 60))m" : "\(seconds / 60):\(pad(seconds % 60))"
        }
        func count(_ outcome: AttemptOutcome) -> Int { s.outcomes[outcome] ?? 0 }
        return "\(s.finished)/\(total) (\(String(format: "%.1f", percent))%) \(String(format: "%.0f", rate)) rows/s ETA \(eta)"
            + " | assigned \(count(.assigned)) rejected \(count(.rejected)) uncertain \(count(.uncertain))"
            + " failed \(count(.failed)) retry \(count(.retry)) 429 \(s.rateLimited) in flight \(s.inFlight)"
    }

    private func pad(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
}
