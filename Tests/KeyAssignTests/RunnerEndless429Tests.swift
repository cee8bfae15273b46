import Foundation
import Testing

@testable import KeyAssign

/// Issue 11, item 2: --max-wait bounds every wait, 429 pauses included; one wave of 429s is one step.
@Suite struct RunnerEndless429Tests {
    /// A Retry-After beyond --max-wait is the server's quota spent (issue 21): exit 10, not a failure.
    @Test(
        "a server that always answers 429 with Retry-After 3600: exit 10 within --max-wait, rows pending, nothing lost")
    func anHourLongRetryAfterEndsTheRunWithinMaxWait() async throws {
        let bench = try HardeningBench(rows: 30, sandbox: ["--fail-429", "1", "--retry-after", "3600"])
        let summaryPath = bench.dir.path + "/summary.json"
        let result = try await bench.run(["--max-wait", "5", "--summary-json", summaryPath])
        #expect(result.status == 10, "stderr: \(result.stderr)")
        // It does not sleep through the hour: it stops as soon as the pause cannot fit in
        // --max-wait (the exit status and the stop reason say so; how long that took is for
        // benchmarks, and RunStateMachineTests and scripts/simulate hold the rule on a clock
        // they control).
        #expect(result.stderr.contains("--max-wait"), "stderr: \(result.stderr)")
        // Nothing lost, nothing counted: the 429s were not processed, so every row is pending
        // with no attempt used, ready for the next run.
        #expect(try bench.stateCounts() == ["pending": 30])
        #expect(try bench.count("SELECT count(*) FROM work WHERE attempts <> 0") == 0)
        let limited = try bench.count(
            "SELECT count(*) FROM attempts WHERE outcome = 'rate_limited' AND http_status = 429")
        #expect(limited >= 1 && limited <= 8, "one wave at most: \(limited)")
        let summary = try bench.summary(summaryPath)
        #expect(summary.pendingLeft == 30 && summary.exitStatus == 10)
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
