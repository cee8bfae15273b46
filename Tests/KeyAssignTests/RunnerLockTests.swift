import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// The database lock (`DB.lock`, flock): held by the real `keyassign run` in another pid and
/// UTS namespace, by a plain holder process, and after their kill -9.
@Suite struct RunnerLockTests {
    /// A process started in the background with a minimal environment.
    final class Background {
        let process = Process()

        init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("KEYASSIGN_") }
            env.merge(environment) { _, new in new }
            process.environment = env
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }

        var pid: Int32 { process.processIdentifier }

        func waitForExit(seconds: Double) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            return !process.isRunning
        }

        deinit {
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
    }

    static func wait(seconds: Double, until condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }

    /// This machine's host name, as gethostname(2) gives it.
    static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        _ = gethostname(&buffer, buffer.count - 1)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func lockText(_ bench: RunnerBench) -> String {
        (try? String(contentsOfFile: bench.db + ".lock", encoding: .utf8)) ?? ""
    }

    /// Every writer command against a held database: exit 75, nothing changed.
    static func expectEveryWriterRefused(_ bench: RunnerBench, naming holder: String) throws {
        let before = try bench.stateCounts()
        let run = try bench.run()
        #expect(run.status == 75, "stderr: \(run.stderr)")
        #expect(run.stderr.contains(holder), "stderr: \(run.stderr)")
        let sync = try CLI.run(
            ["sync"] + Array(bench.runArguments([]).dropFirst()) + [bench.dir.path + "/sales.csv"],
            environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
        #expect(sync.status == 75, "stderr: \(sync.stderr)")
        let extra = bench.dir.path + "/more.csv"
        try "license_key,owner_name,email\nLATE-1,A,a@example.com\n".write(
            toFile: extra, atomically: true, encoding: .utf8)
        let imported = try CLI.run(["import", "--db", bench.db, extra])
        #expect(imported.status == 75, "stderr: \(imported.stderr)")
        #expect(imported.stderr.contains(holder), "stderr: \(imported.stderr)")
        let retried = try CLI.run(["retry", "--db", bench.db, "--state", "failed"])
        #expect(retried.status == 75, "stderr: \(retried.stderr)")
        // Readers are not writers: status works during a run.
        #expect(try CLI.run(["status", "--db", bench.db]).status == 0)
        #expect(try bench.count("SELECT count(*) FROM work WHERE license_key = 'LATE-1'") == 0)
        // The holder may have finished rows meanwhile, never un-finished them.
        let after = try bench.stateCounts()
        for state in ["assigned", "rejected", "uncertain", "failed"] {
            #expect(after[state, default: 0] >= before[state, default: 0])
        }
    }

    @Test func aRunInAnotherPidAndUTSNamespaceHoldsTheLockUntilItsKill9() throws {
        var faults = SandboxConfiguration.Faults()
        faults.latency = .fixed(milliseconds: 100)
        let bench = try RunnerBench(inventory: 300, faults: faults)
        // As a container would run it: pid 1 in its own pid namespace, its own host name.
        let script = "hostname keyassign-pod-7f9c && exec \"$0\" \"$@\""
        let holder = try Background(
            try RequiredTool.path("unshare", package: "util-linux"),
            ["--pid", "--uts", "--fork", "--mount-proc", "/bin/sh", "-c", script, CLI.executableURL.path]
                + bench.runArguments(["--concurrency", "2"]),
            environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
        let started = Self.wait(seconds: 30) {
            Self.lockText(bench).contains("keyassign run")
                && (try? bench.count("SELECT count(*) FROM work WHERE state = 'assigned'")) ?? 0 > 0
        }
        #expect(started, "the namespaced run did not start: lock file says '\(Self.lockText(bench))'")
        // What the holder wrote is shown, but decides nothing: pid 1 on another host name.
        #expect(Self.lockText(bench).contains("pid 1 on host keyassign-pod-7f9c"), "lock file: \(Self.lockText(bench))")
        try Self.expectEveryWriterRefused(bench, naming: "keyassign-pod-7f9c")

        // kill -9 the run itself (pid 1 inside, some other pid here).
        let children = try String(contentsOfFile: "/proc/\(holder.pid)/task/\(holder.pid)/children", encoding: .utf8)
        let inner = try #require(children.split(separator: " ").first.flatMap { Int32($0) })
        #expect(kill(inner, SIGKILL) == 0)
        #expect(holder.waitForExit(seconds: 10))
        #expect(
            try bench.count("SELECT count(*) FROM work WHERE state = 'pending'") > 0,
            "the holder finished before its kill")

        // The next run takes the lock at once and finishes the batch.
        let next = try bench.run()
        #expect(next.status == 0 || next.status == 1, "stderr: \(next.stderr)")
        #expect(!next.stderr.contains("in use by"), "stderr: \(next.stderr)")
        #expect(next.stderr.contains("never finished: its process died"), "stderr: \(next.stderr)")
        let counts = try bench.stateCounts()
        // Only rows in flight at the kill, or answered but not yet committed (a batch is
        // committed every 50 ms), may have reached the server unrecorded: resent, their 801
        // is `uncertain`. Everything else is assigned.
        #expect(counts["assigned", default: 0] >= 290, "\(counts)")
        #expect(counts["assigned", default: 0] + counts["uncertain", default: 0] == 300, "\(counts)")
        #expect(next.status == (counts["uncertain", default: 0] == 0 ? 0 : 1))
        #expect(Self.lockText(bench).isEmpty, "a finished run leaves no holder line: \(Self.lockText(bench))")
    }

    @Test func aPlainFlockHolderRefusesEveryWriterAndItsKill9FreesTheDatabase() throws {
        let bench = try RunnerBench(inventory: 3)
        // Any process holding flock(2) on DB.lock: here a shell that takes it with util-linux
        // flock(1) on its descriptor 9 and becomes `sleep`, keeping the descriptor. It writes
        // nothing into the file, so the refusal cannot name it.
        let holder = try Background(
            "/bin/sh", ["-c", "exec 9>>\"$0\" && flock 9 && exec sleep 120", bench.db + ".lock"])
        #expect(
            Self.wait(seconds: 10) {
                let result = try? CLI.run(["retry", "--db", bench.db])
                return result?.status == 75
            })
        try Self.expectEveryWriterRefused(bench, naming: "another keyassign process")
        #expect(try bench.stateCounts() == ["pending": 3])

        kill(holder.pid, SIGKILL)
        #expect(holder.waitForExit(seconds: 10))
        let run = try bench.run()
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 3])
    }

    @Test func aLockFileLeftByADeadHolderDoesNotBlock() throws {
        // Killed holders leave their line in the file; only the flock counts.
        let bench = try RunnerBench(inventory: 2)
        try "keyassign run (run 9), pid \(getpid()) on host \(Self.hostName), started 2026-11-27T01:00:00.000Z\n"
            .write(toFile: bench.db + ".lock", atomically: true, encoding: .utf8)
        let result = try bench.run()
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 2])
    }

    @Test func importWaitsForARunWithWaitAndRefusesWithoutIt() throws {
        var faults = SandboxConfiguration.Faults()
        faults.latency = .fixed(milliseconds: 50)
        let bench = try RunnerBench(inventory: 400, faults: faults)
        let run = try Background(
            CLI.executableURL.path, bench.runArguments(["--rate", "200", "--concurrency", "4"]),
            environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
        #expect(Self.wait(seconds: 30) { Self.lockText(bench).contains("keyassign run") })
        // A big export arriving during the run: one long write transaction.
        let big = bench.dir.path + "/big.csv"
        let generator = Process()
        generator.executableURL = URL(fileURLWithPath: try RequiredTool.path("python3", package: "python3"))
        generator.arguments = [CLI.packageRoot + "/scripts/gen-export.py", "200000", big]
        generator.standardOutput = FileHandle.nullDevice
        try generator.run()
        generator.waitUntilExit()
        #expect(generator.terminationStatus == 0)

        let refused = try CLI.run(["import", "--db", bench.db, big])
        #expect(refused.status == 75, "stderr: \(refused.stderr)")
        #expect(refused.stderr.contains("keyassign run (run 1)"), "stderr: \(refused.stderr)")
        #expect(run.process.isRunning, "the run ended before the import was tried")

        let waited = try CLI.run(["import", "--db", bench.db, "--wait", "300", big], timeout: 600)
        #expect(waited.status == 0, "stderr: \(waited.stderr)")
        #expect(run.waitForExit(seconds: 60))
        #expect(run.process.terminationStatus == 0)
        // The run lost nothing and resent nothing: every row assigned on its first attempt.
        #expect(try bench.count("SELECT count(*) FROM work WHERE state = 'assigned' AND attempts = 1") == 400)
        #expect(try bench.count("SELECT count(*) FROM attempts") == 400)
        #expect(bench.server.ledger().totals.requests == 400)
        #expect(try bench.count("SELECT count(*) FROM work WHERE state = 'pending'") == 200000)
    }
    @Test func aForeignWriterHoldingSQLitesWriteLockDelaysTheRunButLosesNothing() throws {
        // Not a keyassign writer (those take DB.lock): say the sqlite3 shell in a long
        // transaction. It outlasts the 5 s busy timeout of other commands; the run waits
        // instead of failing with 74 and dropping a batch of verified results.
        var faults = SandboxConfiguration.Faults()
        faults.latency = .fixed(milliseconds: 20)
        let bench = try RunnerBench(inventory: 300, faults: faults)
        let run = try Background(
            CLI.executableURL.path, bench.runArguments(["--rate", "100", "--concurrency", "4"]),
            environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
        #expect(Self.wait(seconds: 30) { (try? bench.count("SELECT count(*) FROM attempts")) ?? 0 > 0 })
        let foreign = try bench.open()
        try foreign.execute("BEGIN IMMEDIATE")
        Thread.sleep(forTimeInterval: 8)
        #expect(run.process.isRunning, "the run ended while the write lock was held")
        try foreign.execute("COMMIT")
        #expect(run.waitForExit(seconds: 60))
        #expect(run.process.terminationStatus == 0)
        #expect(try bench.count("SELECT count(*) FROM work WHERE state = 'assigned' AND attempts = 1") == 300)
        #expect(try bench.count("SELECT count(*) FROM attempts") == 300)
        #expect(bench.server.ledger().totals.requests == 300)
    }
}
