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

    /// The pauses' lengths (1, 2, 4 s: one step per wave) are held on the machine's clock by
    /// `RunStateMachineTests.aWaveOf429sCountsOnce` and in every window by scripts/simulate
    /// (`pause-not-per-wave`). What the real binary shows, whatever the machine's load: the run
    /// gets through more than one wave and stops on a pause of a few seconds, not on the 60 s
    /// that eight 429s counted one by one would ask after the first wave.
    @Test(
        "eight concurrent 429s without Retry-After raise the streak once: several waves, then a short pause ends the run"
    )
    func aWaveOf429sCountsOnce() async throws {
        let bench = try HardeningBench(rows: 8, sandbox: ["--fail-429", "1", "--retry-after", "none"])
        let summaryPath = bench.dir.path + "/summary.json"
        let result = try await bench.run(["--max-wait", "6", "--summary-json", summaryPath])
        #expect(result.status == 1, "stderr: \(result.stderr)")
        let summary = try bench.summary(summaryPath)
        let reason = summary.stopReason ?? ""
        #expect(reason.contains("--max-wait"), "\(reason)")
        // The pause that did not fit: 4 or 8 s when each wave is one step (a wave whose requests
        // left over a stalled moment may count twice). Counted per 429, the first wave alone asks
        // for up to 60 s and ends the run: the two lines after this one catch that.
        let asked = reason.firstMatch(of: /asked to pause (\d+) s/).flatMap { Int($0.output.1) } ?? 0
        #expect(asked > 0 && asked < 60, "the pause that stopped the run: \(reason)")
        #expect(summary.pauses >= 2, "pauses: \(summary.pauses); \(reason)")
        #expect(summary.rateLimited >= 16, "at least two full waves: \(summary.rateLimited)")
        #expect(summary.rateLimited % 8 == 0, "whole waves of eight: \(summary.rateLimited)")
        #expect(try bench.stateCounts() == ["pending": 8])
        #expect(try bench.count("SELECT count(*) FROM work WHERE attempts <> 0") == 0)
    }
}
