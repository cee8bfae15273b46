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
        // Every attempt is recorded with its signed reply (compact: payload and signature) and
        // the verifier's verdict.
        #expect(
            try bench.count(
                """
                SELECT count(*) FROM attempts a JOIN signed_replies r ON r.id = a.signed_reply_id
                WHERE a.verdict = 'trusted' AND a.reply IS NULL AND a.http_status = 200
                """)
                == 9)
        #expect(
            try bench.count("SELECT count(*) FROM work WHERE state = 'assigned' AND last_code = 800 AND attempts = 1")
                == 5)
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
        let summary = try JSONDecoder().decode(
            RunSummary.self, from: Data(contentsOf: URL(fileURLWithPath: summaryPath)))
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

    /// A 5xx may have reached the server: when the attempts run out, the row is uncertain (the
    /// listing settles it), never failed (issue 18).
    @Test func attemptsRunOutIntoUncertain() throws {
        var faults = SandboxConfiguration.Faults()
        faults.fail5xx = 1
        let bench = try RunnerBench(inventory: 4)
        try bench.restart(faults: faults)
        let result = try bench.run(["--max-attempts", "3", "--no-reconcile"])
        #expect(result.status == 1, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["uncertain": 4])
        #expect(
            try bench.count(
                "SELECT count(*) FROM work WHERE attempts = 3 AND last_error LIKE 'gave up after 3 attempts%'") == 4)
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
        try database.execute(
            """
            UPDATE work SET state = 'in_flight', run_id = 99, attempts = 1, in_flight_since = '2026-01-01T00:00:00.000Z'
            WHERE license_key IN ('\(keys[0])', '\(keys[1])')
            """)
        let result = try bench.run(["--no-reconcile"])
        #expect(result.status == 1, "stderr: \(result.stderr)")
        let states = try bench.states()
        #expect(states[keys[0]] == "uncertain")
        #expect(states[keys[1]] == "assigned")
        #expect(states[keys[2]] == "assigned")
        #expect(
            try bench.count(
                "SELECT count(*) FROM attempts WHERE outcome = 'interrupted' AND error = 'run 99 died while this request was in flight' AND run_id = 99"
            ) == 2)
        // --max-attempts bounds one run: the dead run's attempt does not count against this one's.
        #expect(try bench.count("SELECT attempts FROM work WHERE license_key = '\(keys[0])'") == 1)
        #expect(result.stderr.contains("recovered 2 row(s)"))
    }

    @Test func badSignaturesAreNeverAssigned() throws {
        var faults = SandboxConfiguration.Faults()
        faults.badSignature = 1
        let bench = try RunnerBench(inventory: 3)
        try bench.restart(faults: faults)
        let result = try bench.run(["--max-attempts", "2", "--no-reconcile"])
        // Every reply failing signature verification stops the run early (issue 20, item 3), and
        // the rows sent are uncertain: the server may have assigned them.
        #expect(result.status == 78, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["uncertain": 3])
        #expect(
            try bench.count("SELECT count(*) FROM attempts WHERE verdict = 'bad_signature' AND code IS NULL")
                >= EarlyStop.threshold)
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE outcome = 'assigned'") == 0)
        #expect(try bench.count("SELECT count(*) FROM work WHERE last_code IS NOT NULL") == 0)
        #expect(try bench.count("SELECT count(*) FROM work WHERE maybe_delivered = 1") == 3)
    }

    @Test func staleRepliesAreRefused() throws {
        var faults = SandboxConfiguration.Faults()
        faults.stale = 1
        let bench = try RunnerBench(inventory: 2)
        try bench.restart(faults: faults)
        let result = try bench.run(["--max-attempts", "1", "--max-clock-skew", "60", "--no-reconcile"])
        #expect(result.status == 1)
        // Maybe delivered: uncertain, never failed (issue 18); the listing would settle them.
        #expect(try bench.stateCounts() == ["uncertain": 2])
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE verdict = 'stale'") == 2)
    }
}
