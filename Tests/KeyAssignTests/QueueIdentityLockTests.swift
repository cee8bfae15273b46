import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Issue 18, item 3: the database lock is on the file's identity, not on the text of its path.
/// A live `keyassign run` holds the database; a second writer reaching the same file through a
/// symlink, a hard link, a bind mount or `..` is refused (75) and sends nothing, so no key is
/// requested twice. (The earlier lock, on `PATH.lock`, let a run through a symlink call the live
/// run dead and resend its rows in flight: 3 requests per key.)
@Suite(.serialized) struct QueueIdentityLockTests {
    /// A run that stays live for a while: 300 rows, 100 ms each, two at a time.
    static func liveRun(_ bench: RunnerBench) throws -> Process {
        let process = try bench.startRun(["--concurrency", "2"])
        let started = RunnerLockTests.wait(seconds: 30) {
            RunnerLockTests.lockText(bench).contains("keyassign run")
                && ((try? bench.count("SELECT count(*) FROM work WHERE state = 'assigned'")) ?? 0) > 0
        }
        #expect(started, "the first run did not start: lock file says '\(RunnerLockTests.lockText(bench))'")
        return process
    }

    /// `run` through `path` while the live run holds the database.
    static func runThrough(_ path: String, _ bench: RunnerBench, _ extra: [String] = []) throws -> CLI.Result {
        let arguments = bench.runArguments(extra).map { $0 == bench.db ? path : $0 }
        return try CLI.run(arguments, environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
    }

    /// After the live run: every key asked for once, and assigned.
    static func expectNoKeyRequestedTwice(_ bench: RunnerBench, _ first: Process) throws {
        first.waitUntilExit()
        #expect(first.terminationStatus == 0)
        let ledger = bench.server.ledger()
        let resent = ledger.keys.values.reduce(0) { $0 + $1.requestsAfterAssignment }
        #expect(resent == 0, "requests for keys already assigned: \(resent)")
        #expect(ledger.totals.requests == bench.inventory.count, "requests: \(ledger.totals.requests)")
        #expect(try bench.stateCounts() == ["assigned": bench.inventory.count])
    }

    static func slowBench() throws -> RunnerBench {
        var faults = SandboxConfiguration.Faults()
        faults.latency = .fixed(milliseconds: 100)
        return try RunnerBench(inventory: 300, faults: faults)
    }

    @Test func aSymlinkToTheDatabaseIsRefusedAndWithAllowSharedDbGetsTheSameLock() throws {
        let bench = try Self.slowBench()
        let link = bench.dir.path + "/alias.sqlite"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: bench.db)
        let first = try Self.liveRun(bench)
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }

        // A symlink is not a path keyassign trusts (issue 19): refused before anything.
        let refused = try Self.runThrough(link, bench)
        #expect(refused.status == 77, "stderr: \(refused.stderr)")
        #expect(refused.stderr.contains("symbolic link"), "stderr: \(refused.stderr)")
        // Accepted as shared, it is still the same database: the live run holds it.
        let shared = try Self.runThrough(link, bench, ["--allow-shared-db"])
        #expect(shared.status == 75, "stderr: \(shared.stderr)")
        #expect(shared.stderr.contains("keyassign run"), "names the holder: \(shared.stderr)")
        let imported = try CLI.run(["import", "--allow-shared-db", "--db", link, bench.dir.path + "/sales.csv"])
        #expect(imported.status == 75, "stderr: \(imported.stderr)")
        try Self.expectNoKeyRequestedTwice(bench, first)
    }

    @Test func aHardLinkToTheDatabaseGetsTheSameLock() throws {
        let bench = try Self.slowBench()
        let hard = bench.dir.path + "/hard.sqlite"
        #expect(link(bench.db, hard) == 0)
        let first = try Self.liveRun(bench)
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        let second = try Self.runThrough(hard, bench)
        #expect(second.status == 75, "stderr: \(second.stderr)")
        let retried = try CLI.run(["retry", "--db", hard, "--state", "failed"])
        #expect(retried.status == 75, "stderr: \(retried.stderr)")
        try Self.expectNoKeyRequestedTwice(bench, first)
    }

    @Test func aPathWithDotDotGetsTheSameLock() throws {
        let bench = try Self.slowBench()
        try FileManager.default.createDirectory(atPath: bench.dir.path + "/sub", withIntermediateDirectories: false)
        let first = try Self.liveRun(bench)
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        let second = try Self.runThrough(bench.dir.path + "/sub/../work.sqlite", bench)
        #expect(second.status == 75, "stderr: \(second.stderr)")
        try Self.expectNoKeyRequestedTwice(bench, first)
    }

    /// The database file bind-mounted under another name, in a mount namespace of the second
    /// run's own (`unshare -m`): needs root, as `mount` does.
    @Test(.enabled(if: getuid() == 0, "mount --bind needs root"))
    func aBindMountOfTheDatabaseGetsTheSameLock() throws {
        let bench = try Self.slowBench()
        let mountDirectory = bench.dir.path + "/mnt"
        try FileManager.default.createDirectory(atPath: mountDirectory, withIntermediateDirectories: false)
        let target = mountDirectory + "/mounted.sqlite"
        #expect(FileManager.default.createFile(atPath: target, contents: nil, attributes: [.posixPermissions: 0o600]))
        let first = try Self.liveRun(bench)
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        let arguments = bench.runArguments([]).map { $0 == bench.db ? target : $0 }
        // The file and its directory, each mounted over a name of their own.
        let script = "mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\""
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try RequiredTool.path("unshare", package: "util-linux"))
        process.arguments =
            [
                "-m", "--propagation", "private", "/bin/sh", "-c", script, "sh", bench.db, target,
                CLI.executableURL.path,
            ] + arguments
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("KEYASSIGN_") }
        environment["KEYASSIGN_API_KEY"] = bench.server.apiKey
        process.environment = environment
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 75, "stderr: \(stderr)")
        try Self.expectNoKeyRequestedTwice(bench, first)
    }

    /// In one process (`sync` holds the lock across its import and its run), two spellings
    /// of one database are one hold, and the lock is free again after the last release.
    @Test func twoPathsInOneProcessAreOneReentrantHold() throws {
        let dir = try TemporaryDirectory()
        let db = dir.path + "/work.sqlite"
        let hard = dir.path + "/hard.sqlite"
        let outer = try #require(try DatabaseLock.acquire(databasePath: db, command: "sync"))
        #expect(link(db, hard) == 0)
        let inner = try #require(try DatabaseLock.acquire(databasePath: hard, command: "run"))
        inner.release()
        // Still held by `outer`: another process is refused.
        #expect(try CLI.run(["import", "--db", hard, "--dry-run", CLI.samples + "/shop-export.csv"]).status == 75)
        outer.release()
        let after = try CLI.run(["import", "--db", hard, CLI.samples + "/shop-export.csv"])
        #expect(after.status == 0, "stderr: \(after.stderr)")
    }
}
