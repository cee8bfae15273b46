import Foundation
import Testing
@testable import KeyAssign

/// A work database filled by the real `keyassign import`, and the real `keyassign sandbox`
/// command as a child process with the faults under test: servers that behave oddly, and
/// servers that go away.
/// `CLI.run` on a Dispatch thread, awaited.
func offCooperativePool(_ arguments: [String], environment: [String: String] = [:]) async throws -> CLI.Result {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try CLI.run(arguments, environment: environment) })
        }
    }
}

final class HardeningBench {
    let dir: TemporaryDirectory
    let db: String
    let keys: [String]
    let sandbox: SandboxProcess

    /// `owners[i]` is row i's owner name (default "Jane Doe i"); `unknown` more rows carry keys
    /// the sandbox does not know.
    init(rows count: Int, owners: [Int: String] = [:], sandbox arguments: [String]) throws {
        dir = try TemporaryDirectory()
        db = dir.path + "/work.sqlite"
        keys = (0..<count).map { _ in UUID().uuidString.lowercased() }
        try (keys.joined(separator: "\n") + "\n").write(toFile: dir.path + "/keys.txt", atomically: true, encoding: .utf8)
        var csv = "license_key,owner_name,email\n"
        for (i, key) in keys.enumerated() {
            let owner = (owners[i] ?? "Jane Doe \(i)").replacingOccurrences(of: "\"", with: "\"\"")
            csv += "\(key),\"\(owner)\",jane\(i)@example.com\n"
        }
        try csv.write(toFile: dir.path + "/sales.csv", atomically: true, encoding: .utf8)
        let imported = try CLI.run(["import", "--db", db, dir.path + "/sales.csv"])
        guard imported.status == 0 else { throw KeyAssignError(.ioError, "import failed: \(imported.stderr)") }
        sandbox = try SandboxProcess(stateDirectory: dir.path + "/sandbox",
                                     arguments: ["--keys", dir.path + "/keys.txt"] + arguments)
    }

    func runArguments(_ extra: [String]) -> [String] {
        ["run", "--server", sandbox.baseURL, "--public-key", sandbox.publicKeyPath, "--db", db,
         "--rate", "0", "--concurrency", "8", "--backoff-base", "0.02", "--backoff-cap", "0.2", "--timeout", "5"] + extra
    }

    /// Runs `keyassign run` on a Dispatch thread: these runs take seconds, and a test blocking
    /// one of the few cooperative threads for that long starves the async tests beside it.
    func run(_ extra: [String] = []) async throws -> CLI.Result {
        try await offCooperativePool(runArguments(extra), environment: ["KEYASSIGN_API_KEY": sandbox.apiKey])
    }

    func open() throws -> Database { try Database(path: db) }

    func count(_ sql: String) throws -> Int {
        Int(try open().scalarInt(sql) ?? -1)
    }

    func stateCounts() throws -> [String: Int] {
        let statement = try open().prepare("SELECT state, count(*) FROM work GROUP BY state")
        var counts: [String: Int] = [:]
        while try statement.step() { counts[statement.string(0) ?? ""] = Int(statement.int(1)) }
        return counts
    }

    func text(_ sql: String) throws -> String? {
        let statement = try open().prepare(sql)
        return try statement.step() ? statement.string(0) : nil
    }

    func summary(_ path: String) throws -> RunSummary {
        try JSONDecoder().decode(RunSummary.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}

/// Issue 11, item 2: --max-wait bounds every wait, 429 pauses included; one wave of 429s is one step.
@Suite struct RunnerEndless429Tests {
    @Test("a server that always answers 429 with Retry-After 3600: exit 1 within --max-wait, rows pending, nothing lost")
    func anHourLongRetryAfterEndsTheRunWithinMaxWait() async throws {
        let bench = try HardeningBench(rows: 30, sandbox: ["--fail-429", "1", "--retry-after", "3600"])
        let summaryPath = bench.dir.path + "/summary.json"
        let result = try await bench.run(["--max-wait", "5", "--summary-json", summaryPath])
        #expect(result.status == 1, "stderr: \(result.stderr)")
        // The run's own clock: an awaiting test may resume long after the run ended.
        let seconds = try bench.summary(summaryPath).seconds
        // It does not sleep through the hour (nor the CLI helper's 120 s limit): it stops as soon
        // as the pause cannot fit in --max-wait.
        #expect(seconds < 100, "took \(seconds) s")
        #expect(result.stderr.contains("--max-wait"), "stderr: \(result.stderr)")
        // Nothing lost, nothing counted: the 429s were not processed, so every row is pending
        // with no attempt used, ready for the next run.
        #expect(try bench.stateCounts() == ["pending": 30])
        #expect(try bench.count("SELECT count(*) FROM work WHERE attempts <> 0") == 0)
        let limited = try bench.count("SELECT count(*) FROM attempts WHERE outcome = 'rate_limited' AND http_status = 429")
        #expect(limited >= 1 && limited <= 8, "one wave at most: \(limited)")
        let summary = try bench.summary(summaryPath)
        #expect(summary.pendingLeft == 30 && summary.exitStatus == 1)
        #expect(summary.stopReason?.contains("3600") == true, "\(summary.stopReason ?? "no stop reason")")
        #expect(bench.sandbox.assignments().isEmpty)
    }

    @Test("eight concurrent 429s without Retry-After raise the streak once: pauses of 1, 2 s, not 60 s")
    func aWaveOf429sCountsOnce() async throws {
        let bench = try HardeningBench(rows: 8, sandbox: ["--fail-429", "1", "--retry-after", "none"])
        let summaryPath = bench.dir.path + "/summary.json"
        // 1 + 2 s of pauses fit in 6 s; the third wave's 4 s do not. (A wave whose 429s come
        // back over a second or two, on a loaded machine, stretches its pause: then only two fit.)
        let result = try await bench.run(["--max-wait", "6", "--summary-json", summaryPath])
        #expect(result.status == 1, "stderr: \(result.stderr)")
        let seconds = try bench.summary(summaryPath).seconds
        #expect(seconds < 100, "took \(seconds) s")
        let summary = try bench.summary(summaryPath)
        #expect(summary.pauses >= 2 && summary.pauses <= 3, "pauses: \(summary.pauses)")
        #expect(summary.rateLimited >= 16, "at least two full waves: \(summary.rateLimited)")
        #expect(try bench.stateCounts() == ["pending": 8])
        // The longest silence between two requests is a pause of 1 or 2 s, not the 60 s that
        // eight 429s counted one by one made.
        let starts = try bench.open().prepare("SELECT julianday(started_at) * 86400 FROM attempts ORDER BY started_at")
        var times: [Double] = []
        while try starts.step() { times.append(starts.double(0)) }
        let gaps = zip(times.dropFirst(), times).map { $0 - $1 }
        #expect((gaps.max() ?? 0) < 10, "gaps: \(gaps.filter { $0 > 0.5 })")
        #expect((gaps.max() ?? 0) >= 0.8, "the waves must be a pause apart: \(gaps.filter { $0 > 0.5 })")
    }
}

/// Issue 11, item 3: an unsigned 401/403 is one row's problem, unless every request gets one.
@Suite struct RunnerFirewallTests {
    static let bobby = "Robert'); DROP TABLE students;--"

    @Test("a firewall's 403 on the first of 200 rows: 199 assigned, that row failed with the reason, exit 1")
    func oneBlockedRowFailsAloneAndTheRestAreAssigned() async throws {
        let bench = try HardeningBench(rows: 200, owners: [0: Self.bobby], sandbox: ["--waf-block", "drop +table"])
        let result = try await bench.run(["--max-attempts", "3", "--concurrency", "4"])
        #expect(result.status == 1, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 199, "failed": 1])
        // The next night has nothing left to send: the failed row waits for a person.
        let next = try await bench.run(["--max-attempts", "3", "--concurrency", "4"])
        #expect(next.status == 0, "stderr: \(next.stderr)")
        let blocked = bench.keys[0]
        #expect(try bench.text("SELECT state FROM work WHERE license_key = '\(blocked)'") == "failed")
        let reason = try bench.text("SELECT last_error FROM work WHERE license_key = '\(blocked)'") ?? ""
        #expect(reason.contains("gave up after 3 attempts"), "reason: \(reason)")
        #expect(reason.contains("HTTP 403 without a signed reply"), "reason: \(reason)")
        #expect(reason.contains("in front of the license server"), "reason: \(reason)")
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE http_status = 403") == 3)
        #expect(try bench.count("SELECT maybe_delivered FROM work WHERE license_key = '\(blocked)'") == 0)
        #expect(bench.sandbox.assignments().count == 199)
        #expect(bench.sandbox.assignments()[blocked] == nil)
    }

    @Test("every request refused with an unsigned 403: exit 3 after a few requests, rows pending, no attempt used")
    func everythingRefusedIsAnAuthStop() async throws {
        let bench = try HardeningBench(rows: 100, sandbox: ["--waf-block", ".*"])
        let summaryPath = bench.dir.path + "/summary.json"
        let result = try await bench.run(["--summary-json", summaryPath])
        #expect(result.status == 3, "stderr: \(result.stderr)")
        #expect(try bench.summary(summaryPath).seconds < 60)
        #expect(result.stderr.contains("refused before it reaches the license server"), "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["pending": 100])
        #expect(try bench.count("SELECT count(*) FROM work WHERE attempts <> 0") == 0)
        // Ten rows in a row decide it; what was in flight then comes back too.
        let refused = try bench.count("SELECT count(*) FROM attempts WHERE outcome = 'auth_stop' AND http_status = 403")
        #expect(refused >= 10 && refused <= 18, "refused: \(refused)")
        #expect(try bench.count("SELECT count(*) FROM attempts") == refused)
        #expect(try bench.count("SELECT exit_status FROM runs") == 3)
    }

    @Test("a run whose few rows are all refused, unsigned, is an auth stop too")
    func aSmallRunAllRefused() async throws {
        let bench = try HardeningBench(rows: 3, sandbox: ["--waf-block", ".*"])
        let result = try await bench.run()
        #expect(result.status == 3, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["pending": 3])
        #expect(try bench.count("SELECT count(*) FROM work WHERE attempts <> 0") == 0)
    }
}

/// Issue 11, item 5: any verified reply from the license server proves the request reached it.
@Suite struct RunnerVerifiedReplyTests {
    @Test("a verified undocumented code marks the row maybe delivered: after `retry`, its 801 is uncertain")
    func anUndocumentedCodeThenA801IsUncertain() async throws {
        let bench = try HardeningBench(rows: 3, sandbox: ["--undocumented-code", "1"])
        let first = try await bench.run()
        #expect(first.status == 1, "stderr: \(first.stderr)")
        #expect(try bench.stateCounts() == ["failed": 3])
        #expect(try bench.count("SELECT count(*) FROM work WHERE maybe_delivered = 1 AND last_code = 899") == 3)
        // The server did assign them, before answering with a code nobody documented.
        #expect(bench.sandbox.assignments().count == 3)

        #expect(try await offCooperativePool(["retry", "--db", bench.db]).status == 0)
        bench.sandbox.stop()
        let plain = try SandboxProcess(stateDirectory: bench.sandbox.stateDirectory,
                                       arguments: ["--keys", bench.dir.path + "/keys.txt"], port: bench.sandbox.port)
        defer { plain.stop() }
        // Without the listing, to see what the attempt itself records.
        let second = try await offCooperativePool(bench.runArguments(["--no-reconcile"]),
                                                  environment: ["KEYASSIGN_API_KEY": plain.apiKey])
        #expect(second.status == 1, "stderr: \(second.stderr)")
        // 801: the key is taken, and very likely by our own first attempt; never "rejected".
        #expect(try bench.stateCounts() == ["uncertain": 3])
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE code = 801 AND outcome = 'uncertain'") == 3)
        // And the signed listing then settles them: the keys are this buyer's.
        let settled = try await offCooperativePool(
            ["reconcile", "--server", plain.baseURL, "--public-key", plain.publicKeyPath, "--db", bench.db],
            environment: ["KEYASSIGN_API_KEY": plain.apiKey])
        #expect(settled.status == 0, "stderr: \(settled.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 3])
    }
}

/// Issue 11, item 6: a server that is down, restarting, or behind a certificate we do not trust.
@Suite struct RunnerOutageTests {
    @Test("server down: exit 69 within --max-wait, rows pending, no attempt used; with the server up the next run assigns all")
    func serverDownExits69ThenTheNextRunSendsEverything() async throws {
        let bench = try HardeningBench(rows: 20, sandbox: [])
        bench.sandbox.stop()  // its port is closed now
        let summaryPath = bench.dir.path + "/summary.json"
        let down = try await bench.run(["--max-wait", "2", "--summary-json", summaryPath])
        #expect(down.status == 69, "stderr: \(down.stderr)")
        #expect(try bench.summary(summaryPath).seconds < 60)
        #expect(down.stderr.contains("unreachable"), "stderr: \(down.stderr)")
        #expect(try bench.stateCounts() == ["pending": 20])
        #expect(try bench.count("SELECT count(*) FROM work WHERE attempts <> 0") == 0)
        #expect(try bench.count("SELECT count(*) FROM work WHERE maybe_delivered <> 0") == 0)
        let notSent = try bench.count("SELECT count(*) FROM attempts WHERE outcome = 'not_sent' AND error LIKE '%(not sent)'")
        let attempts = try bench.count("SELECT count(*) FROM attempts")
        #expect(notSent >= 5 && notSent == attempts, "not sent \(notSent) of \(attempts)")
        #expect(try bench.count("SELECT exit_status FROM runs") == 69)

        try bench.sandbox.start()
        let up = try await bench.run()
        #expect(up.status == 0, "stderr: \(up.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 20])
        #expect(try bench.count("SELECT count(*) FROM work WHERE attempts <> 1") == 0)
    }

    @Test("the server restarts in the middle of a run: every row is assigned in the end, none failed")
    func aRestartMidRunLosesNothing() throws {
        let bench = try HardeningBench(rows: 200, sandbox: [])
        let process = Process()
        process.executableURL = CLI.executableURL
        process.arguments = bench.runArguments(["--rate", "40", "--burst", "2"])
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("KEYASSIGN_") }
        environment["KEYASSIGN_API_KEY"] = bench.sandbox.apiKey
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        let stderr = bench.dir.path + "/run.err"
        _ = FileManager.default.createFile(atPath: stderr, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: stderr)
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        // Once a few rows are through, stop the server for a few seconds, then bring it back
        // on the same port with the same state, as a package upgrade would.
        let deadline = Date().addingTimeInterval(60)
        while (try? bench.count("SELECT count(*) FROM work WHERE state = 'assigned'")) ?? 0 < 20 && Date() < deadline {
            usleep(50_000)
        }
        bench.sandbox.stop()
        Thread.sleep(forTimeInterval: 3)
        try bench.sandbox.start()
        let end = Date().addingTimeInterval(120)
        while process.isRunning && Date() < end { usleep(50_000) }
        process.waitUntilExit()
        let log = (try? String(contentsOfFile: stderr, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 0, "stderr: \(log)")
        #expect(try bench.stateCounts() == ["assigned": 200])
        // The outage was met (requests that never left), and cost no row its attempts.
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE outcome = 'not_sent'") > 0)
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE outcome = 'failed'") == 0)
        #expect(bench.sandbox.assignments().count == 200)
    }
}

/// The sandbox's fault flags for these servers: bad values are usage errors naming the flag.
@Suite struct SandboxHardeningFlagTests {
    @Test func badFaultFlagsAreUsageErrors() throws {
        let directory = try TemporaryDirectory()
        let state = directory.path + "/s"
        for (flags, named) in [(["--waf-block", "(unclosed"], "waf-block"), (["--retry-after", "-1"], "retry-after"),
                               (["--retry-after", "soon"], "retry-after"), (["--undocumented-code", "2"], "undocumented-code")] {
            let result = try CLI.run(["sandbox", "--state-dir", state] + flags)
            #expect(result.status == 64, "\(flags): \(result.stderr)")
            #expect(result.stderr.contains(named), "\(flags): \(result.stderr)")
        }
    }
}
