import Foundation
import Testing
@testable import KeyAssign
@testable import KeyAssignSandbox

@Suite struct RunnerOutcomeTests {
    @Test func verified800sAreAssignedAndUnknownKeysRejected() throws {
        let bench = try RunnerBench(inventory: 6, unknown: 3)
        try bench.server.preassign(key: bench.inventory[0])
        let summaryPath = bench.dir.path + "/summary.json"
        let result = try bench.run(["--summary-json", summaryPath])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let counts = try bench.stateCounts()
        #expect(counts["assigned"] == 5)
        #expect(counts["rejected"] == 4)
        // Every attempt is recorded with its raw signed reply and the verifier's verdict.
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE verdict = 'trusted' AND reply IS NOT NULL AND http_status = 200") == 9)
        #expect(try bench.count("SELECT count(*) FROM work WHERE state = 'assigned' AND last_code = 800 AND attempts = 1") == 5)
        // The ledger saw each row's idempotency token as Idempotency-Key.
        let ledger = bench.server.ledger()
        let database = try bench.open()
        let tokens = try database.prepare("SELECT license_key, idempotency_token FROM work")
        while try tokens.step() {
            let key = tokens.string(0) ?? ""
            if let entry = ledger.keys[key] {
                #expect(entry.idempotencyKeys == [tokens.string(1) ?? "?"])
            }
        }
        #expect(ledger.keys[bench.inventory[1]]?.ownerName == "Doe, Jane 1")
        #expect(ledger.keys[bench.inventory[1]]?.email == "jane1+tag@example.com")
        let summary = try JSONDecoder().decode(RunSummary.self, from: Data(contentsOf: URL(fileURLWithPath: summaryPath)))
        #expect(summary.assigned == 5 && summary.rejected == 4 && summary.exitStatus == 0)
        #expect(try bench.count("SELECT count(*) FROM run_lock") == 0)
        #expect(try bench.count("SELECT exit_status FROM runs") == 0)
    }
}

extension RunnerOutcomeTests {
    @Test func fiveHundredsRetryUntilAssigned() throws {
        var faults = SandboxConfiguration.Faults()
        faults.fail5xx = 0.5
        faults.seed = 7
        let bench = try RunnerBench(inventory: 12, faults: faults)
        let result = try bench.run(["--max-attempts", "30"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 12])
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE http_status = 503 AND outcome = 'retry'") > 0)
        // A 5xx may have reached the server: the row is marked, though the 800 still wins.
        #expect(try bench.count("SELECT count(*) FROM work WHERE attempts > 1 AND maybe_delivered = 1") > 0)
    }

    @Test func attemptsRunOutIntoFailed() throws {
        var faults = SandboxConfiguration.Faults()
        faults.fail5xx = 1
        let bench = try RunnerBench(inventory: 4)
        try bench.restart(faults: faults)
        let result = try bench.run(["--max-attempts", "3"])
        #expect(result.status == 1, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["failed": 4])
        #expect(try bench.count("SELECT count(*) FROM work WHERE attempts = 3 AND last_error LIKE 'gave up after 3 attempts%'") == 4)
        #expect(try bench.count("SELECT count(*) FROM attempts") == 12)
    }

    @Test func dropAfterSendingThen801IsUncertainNeverRejected() throws {
        var drop = SandboxConfiguration.Faults()
        drop.dropAfter = 1
        let bench = try RunnerBench(inventory: 3)
        try bench.restart(faults: drop)
        // The sandbox assigns each key, then hangs up: the run cannot know, and keeps the rows.
        let first = try bench.run(["--max-wait", "0", "--backoff-base", "0.3", "--backoff-cap", "0.3"])
        #expect(first.status == 1, "stderr: \(first.stderr)")
        #expect(try bench.stateCounts() == ["retry": 3])
        #expect(try bench.count("SELECT count(*) FROM work WHERE maybe_delivered = 1") == 3)
        #expect(bench.server.ledger().totals.assigned == 3)
        // The next run gets a verified 801 for each: probably our own assignment.
        try bench.restart()
        Thread.sleep(forTimeInterval: 0.35)
        // Without the key listing (ReconcileCLITests covers what it settles).
        let second = try bench.run(["--no-reconcile"])
        #expect(second.status == 1, "stderr: \(second.stderr)")
        #expect(try bench.stateCounts() == ["uncertain": 3])
        #expect(try bench.count("SELECT count(*) FROM work WHERE last_code = 801") == 3)
    }

    @Test func rowsLeftInFlightByADeadRunAreRecovered() throws {
        let bench = try RunnerBench(inventory: 3)
        let keys = bench.inventory
        // As if run 99 had sent the first two rows and died; the first one reached the server.
        try bench.server.preassign(key: keys[0])
        let database = try bench.open()
        try database.execute("""
            UPDATE work SET state = 'in_flight', run_id = 99, attempts = 1, in_flight_since = '2026-01-01T00:00:00.000Z'
            WHERE license_key IN ('\(keys[0])', '\(keys[1])')
            """)
        let result = try bench.run(["--no-reconcile"])
        #expect(result.status == 1, "stderr: \(result.stderr)")
        let states = try bench.states()
        #expect(states[keys[0]] == "uncertain")
        #expect(states[keys[1]] == "assigned")
        #expect(states[keys[2]] == "assigned")
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE outcome = 'interrupted' AND error = 'run 99 died while this request was in flight' AND run_id = 99") == 2)
        #expect(try bench.count("SELECT attempts FROM work WHERE license_key = '\(keys[0])'") == 2)
        #expect(result.stderr.contains("recovered 2 row(s)"))
    }

    @Test func badSignaturesAreNeverAssigned() throws {
        var faults = SandboxConfiguration.Faults()
        faults.badSignature = 1
        let bench = try RunnerBench(inventory: 3)
        try bench.restart(faults: faults)
        let result = try bench.run(["--max-attempts", "2"])
        #expect(result.status == 1, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["failed": 3])
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE verdict = 'bad_signature' AND code IS NULL") == 6)
        #expect(try bench.count("SELECT count(*) FROM work WHERE last_code IS NOT NULL") == 0)
        #expect(try bench.count("SELECT count(*) FROM work WHERE maybe_delivered = 1") == 3)
    }

    @Test func staleRepliesAreRefused() throws {
        var faults = SandboxConfiguration.Faults()
        faults.stale = 1
        let bench = try RunnerBench(inventory: 2)
        try bench.restart(faults: faults)
        let result = try bench.run(["--max-attempts", "1", "--max-clock-skew", "60"])
        #expect(result.status == 1)
        #expect(try bench.stateCounts() == ["failed": 2])
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE verdict = 'stale'") == 2)
    }
}

@Suite struct RunnerStopTests {
    @Test func authRefusalStopsTheRunAndLeavesRowsPending() throws {
        let bench = try RunnerBench(inventory: 40)
        let result = try bench.run(["--concurrency", "4"], apiKey: "not-the-key")
        #expect(result.status == 3, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("code 100"))
        #expect(try bench.stateCounts() == ["pending": 40])
        #expect(try bench.count("SELECT count(*) FROM work WHERE attempts <> 0") == 0)
        // Nothing more was sent after the refusal: at most the requests already in flight.
        #expect(bench.server.ledger().totals.requests <= 4)
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE outcome = 'auth_stop' AND http_status = 401 AND code = 100") >= 1)
        #expect(try bench.count("SELECT exit_status FROM runs") == 3)
    }

    @Test func aLockRowOfAnOlderVersionNamingALivePidDoesNotBlock() throws {
        // Versions before the flock kept the lock in this table and asked kill(pid, 0): a row
        // naming a live process (this test runner) on this host refused every run with 75.
        let bench = try RunnerBench(inventory: 2)
        let database = try bench.open()
        try database.execute("""
            INSERT INTO run_lock (id, pid, host, started_at, run_id)
            VALUES (1, \(getpid()), '\(RunnerLockTests.hostName)', '2026-11-27T01:00:00.000Z', 41)
            """)
        // And a run that died without an end (its process was killed -9).
        try database.execute("""
            INSERT INTO runs (id, started_at, pid, host, server) VALUES (41, '2026-11-27T01:00:00.000Z', 1, 'pod-7f9c', 'x')
            """)
        let result = try bench.run()
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 2])
        #expect(try bench.count("SELECT count(*) FROM run_lock") == 0)
        #expect(result.stderr.contains("run 41 (pid 1 on pod-7f9c"), "stderr: \(result.stderr)")
        #expect(try bench.count("SELECT count(*) FROM runs WHERE ended_at IS NULL") == 0)
    }

    @Test func sigtermFinishesWhatIsInFlightAndExits143() throws {
        var faults = SandboxConfiguration.Faults()
        faults.latency = .fixed(milliseconds: 200)
        let bench = try RunnerBench(inventory: 200, faults: faults)
        let process = Process()
        process.executableURL = CLI.executableURL
        process.arguments = bench.runArguments(["--concurrency", "4"])
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("KEYASSIGN_") }
        environment["KEYASSIGN_API_KEY"] = bench.server.apiKey
        process.environment = environment
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Signal a run that is sending: a SIGTERM that arrives while the process is still starting
        // (slow on a loaded machine) is blocked by the spawning thread's inherited mask and then
        // discarded when the runner sets SIG_IGN to install its handler.
        let started = Date().addingTimeInterval(30)
        while (try? bench.count("SELECT count(*) FROM attempts")) ?? 0 < 1 && Date() < started && process.isRunning {
            usleep(20_000)
        }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        #expect(!process.isRunning)
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        #expect(process.terminationStatus == 143)
        let counts = try bench.stateCounts()
        #expect(counts["in_flight"] == nil)
        #expect((counts["assigned"] ?? 0) > 0)
        #expect((counts["pending"] ?? 0) > 0)
        #expect(try bench.count("SELECT count(*) FROM attempts") == counts["assigned"] ?? -1)
        #expect(try bench.count("SELECT exit_status FROM runs") == 143)
        #expect(try bench.count("SELECT count(*) FROM run_lock") == 0)
    }
}

@Suite struct RunnerRateAndSecretTests {
    @Test func a429PausesEverySenderAndDoesNotCountAsAnAttempt() throws {
        var faults = SandboxConfiguration.Faults()
        faults.fail429 = 0.5
        faults.seed = 11
        let bench = try RunnerBench(inventory: 8)
        try bench.restart(faults: faults)
        // One attempt each: a 429 must not use it up.
        let result = try bench.run(["--max-attempts", "1", "--concurrency", "2"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 8])
        let limited = try bench.count("SELECT count(*) FROM attempts WHERE outcome = 'rate_limited' AND http_status = 429")
        #expect(limited > 0)
        #expect(try bench.count("SELECT count(*) FROM work WHERE attempts <> 1") == 0)
        // The pause is shared: after a 429 (Retry-After: 1), no request at all starts for a second.
        #expect(try bench.count("""
            SELECT count(*) FROM attempts a JOIN attempts r ON r.outcome = 'rate_limited'
            WHERE (julianday(a.started_at) - julianday(r.ended_at)) * 86400 BETWEEN 0.05 AND 0.95
            """) == 0)
    }

    @Test func theServersRateLimitIsRespectedWithSharedPauses() throws {
        // Half the server's rate, and a server burst that absorbs a stall of a few hundred
        // milliseconds on a loaded test machine: what is checked is that the client paces
        // itself (unpaced, 30 rows at concurrency 8 meet 429s at once), not how quiet the
        // machine is.
        let bench = try RunnerBench(inventory: 30, rateLimit: .init(rate: 20, burst: 5))
        let started = Date()
        let result = try bench.run(["--rate", "10", "--burst", "2", "--concurrency", "8"])
        let seconds = Date().timeIntervalSince(started)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 30])
        #expect(bench.server.ledger().rateLimited == 0)
        // One at once (the other token is the reserve), then 29 at 10/s: at least 2.8 s.
        #expect(seconds >= 2.8)
    }

    @Test func theAPIKeyAppearsNowhere() throws {
        let secret = "3f6c0b1e-SECRET-\(UUID().uuidString)"
        var faults = SandboxConfiguration.Faults()
        faults.fail5xx = 0.3
        faults.badSignature = 0.2
        faults.seed = 5
        let bench = try RunnerBench(inventory: 20, unknown: 3, apiKey: secret)
        try bench.restart(faults: faults)
        let keyFile = bench.dir.path + "/key"
        try (secret + "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
        let summaryPath = bench.dir.path + "/summary.json"
        let result = try CLI.run(bench.runArguments(["--api-key-file", keyFile, "--summary-json", summaryPath,
                                                     "--max-attempts", "2"]))
        #expect(result.status == 1 || result.status == 0, "stderr: \(result.stderr)")
        #expect(try bench.count("SELECT count(*) FROM work WHERE state = 'assigned'") > 0)
        #expect(!result.stdout.contains(secret) && !result.stderr.contains(secret))
        #expect(!result.stderr.contains("SECRET"))
        for file in [bench.db, bench.db + "-wal", bench.db + "-shm", summaryPath] {
            let bytes = (try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data()
            #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(file) holds the API key")
            #expect(bytes.range(of: Data("SECRET".utf8)) == nil, "\(file) holds part of the API key")
        }
    }

    @Test func configurationErrorsExit78() throws {
        let bench = try RunnerBench(inventory: 1)
        var args = bench.runArguments([])
        let missing = try CLI.run(args)
        #expect(missing.status == 78)
        #expect(missing.stderr.contains("KEYASSIGN_API_KEY"))
        let env = ["KEYASSIGN_API_KEY": bench.server.apiKey]
        #expect(try CLI.run(bench.runArguments(["--ca-file", "/x.pem"]), environment: env).status == 78)
        #expect(try CLI.run(bench.runArguments(["--public-key", bench.dir.path + "/nope.pem"]), environment: env).status == 78)
        args[2] = "http://licenses.example.com"
        let insecure = try CLI.run(args, environment: env)
        #expect(insecure.status == 78)
        #expect(insecure.stderr.contains("clear text"))
        #expect(try CLI.run(bench.runArguments(["--body", "xml"]), environment: env).status == 64)
        #expect(try CLI.run(["run", "--help"]).stdout.contains("(values: form, json; default: form)"))
        #expect(try bench.stateCounts() == ["pending": 1])
    }

    @Test func jsonBodiesWorkToo() throws {
        let bench = try RunnerBench(inventory: 3, unknown: 1)
        let result = try bench.run(["--body", "json"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 3, "rejected": 1])
        #expect(bench.server.ledger().keys[bench.inventory[2]]?.ownerName == "Doe, Jane 2")
    }

    @Test func syncImportsThenRunsAndReportsABadFile() throws {
        let bench = try RunnerBench(inventory: 4)
        let more = (0..<2).map { _ in UUID().uuidString.lowercased() }
        let file = bench.dir.path + "/more.csv"
        try ("license_key\n" + more.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let bad = bench.dir.path + "/bad.csv"
        try "name,mail\nx,y\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let args = ["sync"] + Array(bench.runArguments([]).dropFirst()) + [file, bad]
        let result = try CLI.run(args, environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
        #expect(result.status == 65, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 4, "rejected": 2])
        let clean = try CLI.run(["sync"] + Array(bench.runArguments([]).dropFirst()) + [file],
                                environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
        #expect(clean.status == 0, "stderr: \(clean.stderr)")
    }
}
