import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Issue 19, item 5 of "Measured": a FIFO (or a device) named where keyassign expects a file
/// is refused at once with a clear error (exit 78), before any lock: never a hang.
@Suite struct SecurityRegularFileTests {
    static func fifo(in dir: String, _ name: String) throws -> String {
        let path = dir + "/" + name
        #expect(mkfifo(path, 0o600) == 0)
        return path
    }

    /// Well below CLI.run's own limit: a hang is a failure, not a slow test.
    static let patience: TimeInterval = 20

    @Test func fifosAsInputFilesAreRefusedNotWaitedOn() throws {
        let bench = try RunnerBench(inventory: 1)
        let fifo = try Self.fifo(in: bench.dir.path, "pipe")
        let env = ["KEYASSIGN_API_KEY": bench.server.apiKey]
        for (flag, extra) in [
            ("--public-key", ["--public-key", fifo]), ("--api-key-file", ["--api-key-file", fifo]),
            ("--ca-file", ["--ca-file", fifo]),
        ] {
            let result = try CLI.run(bench.runArguments(extra), environment: env, timeout: Self.patience)
            #expect(result.status == 78, "\(flag): \(result.status) \(result.stderr)")
            #expect(
                result.stderr.contains("\(flag.hasPrefix("--public") ? "public key" : flag) \(fifo)")
                    && result.stderr.contains("a FIFO (named pipe), not a regular file"), "\(flag): \(result.stderr)")
        }
        let reconcile = try CLI.run(
            ["reconcile", "--server", bench.server.baseURL, "--db", bench.db, "--public-key", fifo],
            environment: env, timeout: Self.patience)
        #expect(reconcile.status == 78, "\(reconcile.stderr)")
        #expect(try bench.stateCounts() == ["pending": 1])
    }

    @Test func fifosAsOutputFilesAreRefusedBeforeTheLock() throws {
        let bench = try RunnerBench(inventory: 1)
        let fifo = try Self.fifo(in: bench.dir.path, "metrics.prom")
        for flag in ["--metrics-file", "--summary-json"] {
            let result = try CLI.run(
                bench.runArguments([flag, fifo]), environment: ["KEYASSIGN_API_KEY": bench.server.apiKey],
                timeout: Self.patience)
            #expect(result.status == 78, "\(flag): \(result.status) \(result.stderr)")
            #expect(
                result.stderr.contains("\(flag) \(fifo): it is a FIFO (named pipe), not a regular file"),
                "\(result.stderr)")
            // Refused before the run: nothing was sent, no run was recorded.
            #expect(try bench.stateCounts() == ["pending": 1])
            #expect(try bench.count("SELECT count(*) FROM runs") == 0)
        }
        for extra in [["--output", fifo], ["--html", fifo]] {
            let report = try CLI.run(["report", "--db", bench.db] + extra, timeout: Self.patience)
            #expect(report.status == 78, "\(extra): \(report.status) \(report.stderr)")
            #expect(report.stderr.contains("a FIFO (named pipe), not a regular file"), "\(report.stderr)")
        }
        // The FIFO is still a FIFO: nothing renamed over it.
        var info = stat()
        #expect(stat(fifo, &info) == 0 && info.st_mode & S_IFMT == S_IFIFO)
    }
}
