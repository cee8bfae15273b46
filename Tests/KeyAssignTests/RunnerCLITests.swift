import Foundation
import Testing
@testable import KeyAssign

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
