import Foundation
import Testing

@testable import KeyAssignSandbox

/// The deterministic simulator (`KeyAssignSandbox/Simulation`, `scripts/simulate`): a short run
/// of seeds, and that a seed replays exactly.
@Suite struct SimulationTests {
    @Test("150 seeded scenarios break no invariant, issue 18's row-truth rules included")
    func shortRun() throws {
        let simulator = try Simulator(rules: .final)
        var violating: [String] = []
        for seed in UInt64(1)...150 {
            let outcome = simulator.run(seed: seed)
            if let first = outcome.violations.first { violating.append("seed \(seed): \(first)") }
        }
        #expect(violating.isEmpty, "\(violating.joined(separator: "\n"))")
    }

    @Test("a seed replays event for event: the same trace twice")
    func replay() throws {
        let simulator = try Simulator(rules: .final)
        for seed: UInt64 in [7, 42, 1_234] {
            var first: [String] = []
            var second: [String] = []
            _ = simulator.run(seed: seed) { first.append($0) }
            _ = simulator.run(seed: seed) { second.append($0) }
            #expect(first == second)
            #expect(first.count > 5)
        }
    }

    @Test("the simulated nights exercise what they claim to: crashes, 429 pauses, timeouts, partitions, listings")
    func coverage() throws {
        let simulator = try Simulator(rules: .current)
        var lines: [String] = []
        for seed in UInt64(1)...60 {
            _ = simulator.run(seed: seed) { lines.append($0) }
        }
        let text = lines.joined(separator: "\n")
        for needle in [
            "CRASH", "rate_limited", "timed out", "Connection refused", "listing fetched", "row(s) recovered",
            "uncertain",
        ] {
            #expect(text.contains(needle), "no scenario of 60 shows \(needle)")
        }
    }
}
