import Foundation
import Testing

@testable import KeyAssign

/// Issue 11, item 3: an unsigned 401/403 is one row's problem, unless every request gets one.
@Suite struct RunnerFirewallTests {
    static let bobby = "Robert'); DROP TABLE students;--"

    @Test("a firewall's 403 on the first of 200 rows: 199 assigned, that row failed with the reason, exit 1")
    func oneBlockedRowFailsAloneAndTheRestAreAssigned() async throws {
        let bench = try HardeningBench(rows: 200, owners: [0: Self.bobby], sandbox: ["--waf-block", "drop +table"])
        let result = try await bench.run(["--max-attempts", "3", "--concurrency", "4"])
        #expect(result.status == 1, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 199, "failed": 1])
        let blocked = bench.keys[0]
        #expect(try bench.text("SELECT state FROM work WHERE license_key = '\(blocked)'") == "failed")
        let reason = try bench.text("SELECT last_error FROM work WHERE license_key = '\(blocked)'") ?? ""
        #expect(reason.contains("gave up after 3 attempts"), "reason: \(reason)")
        #expect(reason.contains("HTTP 403 without a signed reply"), "reason: \(reason)")
        #expect(reason.contains("in front of the license server"), "reason: \(reason)")
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE http_status = 403") == 3)
        // An unsigned refusal is a passing reason (issue 18): the next night sends the row again.
        // Alone in that run, its refusal is all the run hears, so the run cannot tell it from a
        // proxy refusing everything: exit 3, the row back to pending, its attempt refunded.
        let next = try await bench.run(["--max-attempts", "3", "--concurrency", "4"])
        #expect(next.status == 3, "stderr: \(next.stderr)")
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE http_status = 403") == 4)
        #expect(try bench.text("SELECT state FROM work WHERE license_key = '\(blocked)'") == "pending")
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
        // It stops after a handful of replies (counted below), not after some time.
        #expect(try bench.summary(summaryPath).exitStatus == 3)
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
