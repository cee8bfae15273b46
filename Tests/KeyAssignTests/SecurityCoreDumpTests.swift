import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Issue 19, item 6 of "Measured": a core dump of a run would hold the API key. Once it holds
/// the key, a run sets RLIMIT_CORE to 0 and makes itself non-dumpable. Checked on a real run
/// started with core dumps allowed (`ulimit -c unlimited`), through its /proc/PID/limits.
@Suite struct SecurityCoreDumpTests {
    @Test func aRunHoldingTheKeyCannotDumpCore() throws {
        var faults = SandboxConfiguration.Faults()
        faults.latency = .fixed(milliseconds: 3000)
        let bench = try RunnerBench(inventory: 2, faults: faults)
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        // exec: the shell becomes keyassign, with the raised limit as its starting point.
        shell.arguments =
            ["-c", "ulimit -c unlimited && exec \"$0\" \"$@\"", CLI.executableURL.path]
            + bench.runArguments(["--concurrency", "1"])
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("KEYASSIGN_") }
        env["KEYASSIGN_API_KEY"] = bench.server.apiKey
        shell.environment = env
        shell.standardOutput = FileHandle.nullDevice
        shell.standardError = FileHandle.nullDevice
        try shell.run()
        defer {
            if shell.isRunning { kill(shell.processIdentifier, SIGKILL) }
            shell.waitUntilExit()
        }
        // The first request waits 3 s on the sandbox: the run is holding the key by then.
        let deadline = Date().addingTimeInterval(30)
        var limit: String?
        while Date() < deadline && shell.isRunning {
            if bench.server.ledger().totals.requests > 0,
                let limits = try? String(contentsOfFile: "/proc/\(shell.processIdentifier)/limits", encoding: .utf8),
                let line = limits.split(separator: "\n").first(where: { $0.hasPrefix("Max core file size") })
            {
                limit = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst(4).prefix(2).joined(
                    separator: " ")
                break
            }
            usleep(20_000)
        }
        #expect(limit == "0 0", "core limit of the run: \(limit ?? "not read")")
        var info = stat()
        // Non-dumpable: /proc/PID belongs to root (only visible to a test not running as root).
        if getuid() != 0, stat("/proc/\(shell.processIdentifier)", &info) == 0 {
            #expect(info.st_uid == 0)
        }
    }
}
