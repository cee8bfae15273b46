import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

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
        #expect(
            try bench.count(
                "SELECT count(*) FROM attempts WHERE outcome = 'auth_stop' AND http_status = 401 AND code = 100") >= 1)
        #expect(try bench.count("SELECT exit_status FROM runs") == 3)
    }

    @Test func aLockRowOfAnOlderVersionNamingALivePidDoesNotBlock() throws {
        // Versions before the flock kept the lock in this table and asked kill(pid, 0): a row
        // naming a live process (this test runner) on this host refused every run with 75.
        let bench = try RunnerBench(inventory: 2)
        let database = try bench.open()
        try database.execute(
            """
            INSERT INTO run_lock (id, pid, host, started_at, run_id)
            VALUES (1, \(getpid()), '\(RunnerLockTests.hostName)', '2026-11-27T01:00:00.000Z', 41)
            """)
        // And a run that died without an end (its process was killed -9).
        try database.execute(
            """
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
        let process = try bench.startRun(["--concurrency", "4"])
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
