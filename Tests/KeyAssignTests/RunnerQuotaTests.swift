import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Issue 21, "Quotas as the server states them": the real CLI against the real sandbox (a child
/// process with fixed-window quotas, as Laravel's throttle keeps them) and the real database.
/// No test waits a window out; those that must not see one expire between two runs are a day
/// long, however long a loaded machine keeps the test from going on.
@Suite struct RunnerQuotaTests {
    static func ledger(_ bench: HardeningBench) async throws -> SandboxLedger {
        let reply = try await SandboxHTTP.send(URL(string: bench.sandbox.baseURL + "/__sandbox/ledger")!, method: "GET")
        return try JSONDecoder().decode(SandboxLedger.self, from: Data(reply.body))
    }

    /// Request start times (Unix seconds) of every attempt, oldest first.
    static func attemptTimes(_ bench: HardeningBench) throws -> [Double] {
        let statement = try bench.open().prepare(
            "SELECT (julianday(started_at) - 2440587.5) * 86400 FROM attempts ORDER BY started_at")
        var times: [Double] = []
        while try statement.step() { times.append(statement.double(0)) }
        return times
    }

    // Ten minutes: the second run must fall inside the window however loaded the machine is;
    // nothing waits for it (--max-wait 5).
    @Test(
        "a quota of 5 per 10 min and 12 rows: 5 assigned, exit 10, 7 pending, one 'quota spent' line, the reopening in the metrics; a second run inside the window sends nothing and says why"
    )
    func aSpentQuotaEndsTheRunCleanlyAndTheNextRunKnows() async throws {
        let started = Timestamps.now()
        let bench = try HardeningBench(rows: 12, sandbox: ["--quota", "5/86400s"])
        let metrics = bench.dir.path + "/keyassign.prom"
        let summaryPath = bench.dir.path + "/summary.json"
        let first = try await bench.run(["--max-wait", "5", "--metrics-file", metrics, "--summary-json", summaryPath])
        #expect(first.status == ExitStatus.quotaSpent.rawValue, "stderr: \(first.stderr)")
        #expect(first.status == 10)
        #expect(try bench.stateCounts() == ["assigned": 5, "pending": 7])
        // Rows refused by the quota used no attempt: they are as they were imported.
        #expect(try bench.count("SELECT count(*) FROM work WHERE state = 'pending' AND attempts <> 0") == 0)
        let lines = first.stderr.split(separator: "\n").filter { $0.contains("quota spent: ") }
        #expect(lines.count == 1, "stderr: \(first.stderr)")
        #expect(
            lines.first?.contains("quota spent: 7 rows left, about 2 more nights at this quota") == true,
            "\(lines)")
        let summary = try bench.summary(summaryPath)
        #expect(summary.exitStatus == 10 && summary.pendingLeft == 7)
        let reopens = try #require(summary.quotaReopensAt)
        let now = Timestamps.now()
        #expect(
            reopens > started + 86_400 && reopens <= now + 86_401,
            "reopens at \(reopens), started \(started), now \(now)")
        let text = try String(contentsOfFile: metrics, encoding: .utf8)
        let metric = text.split(separator: "\n").first { $0.hasPrefix("keyassign_quota_reopens_timestamp_seconds ") }
        let value = metric.flatMap { Double($0.split(separator: " ").last ?? "") }
        #expect(value.map { abs($0 - reopens) < 0.01 } == true, "\(metric ?? "no metric")")
        #expect(text.contains("keyassign_run_exit_status 10"))
        #expect(bench.sandbox.assignments().count == 5)

        // The same hour, the same minute: the database knows the quota is spent.
        let before = try await Self.ledger(bench).totals.requests
        let second = try await bench.run(["--max-wait", "5"])
        #expect(second.status == 10, "stderr: \(second.stderr)")
        #expect(try await Self.ledger(bench).totals.requests == before, "the second run sent a request")
        #expect(second.stderr.contains("X-RateLimit"), "the server's quota is logged at the start: \(second.stderr)")
        #expect(second.stderr.contains("stopping the run: the server's quota is spent"), "stderr: \(second.stderr)")
        #expect(second.stderr.contains("quota spent: 7 rows left"), "stderr: \(second.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 5, "pending": 7])
    }

    @Test(
        "--rate 3/day: the run sends 3 and exits 10; the database keeps them, so the next run sends nothing and names the limit"
    )
    func whatWasSentIsKeptForTheNextRun() async throws {
        // A server without any quota of its own: only keyassign's log can hold the second run back.
        let bench = try HardeningBench(rows: 5, sandbox: [])
        let first = try await bench.run(["--rate", "3/day", "--max-wait", "5"])
        #expect(first.status == 10, "stderr: \(first.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 3, "pending": 2])
        #expect(try bench.count("SELECT sum(requests) FROM quota_sends") == 3)
        let before = try await Self.ledger(bench).totals.requests
        #expect(before == 3)
        let second = try await bench.run(["--rate", "3/day", "--max-wait", "5"])
        #expect(second.status == 10, "stderr: \(second.stderr)")
        #expect(try await Self.ledger(bench).totals.requests == 3, "the second run sent a request")
        #expect(second.stderr.contains("already sent: 3 of 3 in the last 1 day"), "stderr: \(second.stderr)")
        #expect(
            second.stderr.contains("stopping the run: the --rate 3/day quota is spent: 3 sent in the last 1 day"),
            "stderr: \(second.stderr)")
        #expect(
            second.stderr.contains("quota spent: 2 rows left, about 1 more nights at this quota"),
            "stderr: \(second.stderr)")
    }

    @Test(
        "a 429 whose Retry-After lies beyond --max-wait is remembered: the next run sends nothing, names it, exits 10")
    func aLongRetryAfterIsRememberedAcrossRuns() async throws {
        let bench = try HardeningBench(rows: 6, sandbox: ["--fail-429", "1", "--retry-after", "3600"])
        let first = try await bench.run(["--max-wait", "5"])
        #expect(first.status == 10, "stderr: \(first.stderr)")
        #expect(first.stderr.contains("Retry-After 3600 s"), "stderr: \(first.stderr)")
        let before = try await Self.ledger(bench).totals.requests
        #expect(before >= 1)
        let second = try await bench.run(["--max-wait", "5"])
        #expect(second.status == 10, "stderr: \(second.stderr)")
        #expect(try await Self.ledger(bench).totals.requests == before, "the second run sent a request")
        #expect(second.stderr.contains("the server asked not to be sent anything before"), "stderr: \(second.stderr)")
        #expect(second.stderr.contains("Retry-After 3600 s"), "stderr: \(second.stderr)")
        #expect(try bench.stateCounts() == ["pending": 6])
    }

    @Test(
        "--rate 3/2s --rate 5/6s: both hold in every window of their length, and the server's same fixed windows never refuse"
    )
    func severalRateLimitsAllHold() async throws {
        let bench = try HardeningBench(rows: 8, sandbox: ["--quota", "3/2s", "--quota", "5/6s"])
        let result = try await bench.run(["--rate", "3/2s", "--rate", "5/6s", "--max-wait", "60"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 8])
        let times = try Self.attemptTimes(bench)
        #expect(times.count == 8)
        // Attempt times are the claim's, to the millisecond: a window is counted a hair short.
        #expect(RunnerRateLimitsTests.fullestWindow(times, length: 2 - 0.002) <= 3, "\(times)")
        #expect(RunnerRateLimitsTests.fullestWindow(times, length: 6 - 0.002) <= 5, "\(times)")
        #expect(try await Self.ledger(bench).rateLimited == 0)
        #expect(result.stderr.contains("quota: --rate 3/2s, 5/6s"), "stderr: \(result.stderr)")
    }

    @Test("X-RateLimit-Remaining and -Reset are honoured: no request beyond Remaining before Reset, so no 429")
    func rateLimitHeadersAreHonoured() async throws {
        let bench = try HardeningBench(rows: 8, sandbox: ["--quota", "3/2s"])
        // No client-side limit at all: only the headers can keep it from the 429.
        let result = try await bench.run(["--concurrency", "1", "--max-wait", "30"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 8])
        #expect(try await Self.ledger(bench).rateLimited == 0, "stderr: \(result.stderr)")
        #expect(
            result.stderr.contains("the server's quota (X-RateLimit): 2 of 3 remaining until"),
            "stderr: \(result.stderr)")
    }

    @Test("the shipped systemd unit and the cron docs treat exit 10 (quota spent) as not a failure")
    func theQuotaStatusIsASuccessToSystemdAndCron() throws {
        let unit = try String(
            contentsOfFile: CLI.packageRoot + "/contrib/systemd/keyassign-sync.service", encoding: .utf8)
        let line = try #require(unit.split(separator: "\n").first { $0.hasPrefix("SuccessExitStatus=") })
        let statuses = line.dropFirst("SuccessExitStatus=".count).split(separator: " ").compactMap { Int32($0) }
        #expect(statuses.contains(ExitStatus.quotaSpent.rawValue), "\(line)")
        let scheduling = try String(contentsOfFile: CLI.packageRoot + "/docs/scheduling.md", encoding: .utf8)
        #expect(scheduling.contains("| 10 | success |"), "docs/scheduling.md's table must list exit 10 as success")
        #expect(
            scheduling.contains("[ $s -eq 10 ] || /usr/local/bin/notify-sales-ops"),
            "the crontab line must not report exit 10 as a failure")
    }
}
