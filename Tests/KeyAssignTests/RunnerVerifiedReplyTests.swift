import Foundation
import Testing

@testable import KeyAssign

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
        let plain = try SandboxProcess(
            stateDirectory: bench.sandbox.stateDirectory,
            arguments: ["--keys", bench.dir.path + "/keys.txt"], port: bench.sandbox.port)
        defer { plain.stop() }
        // Without the listing, to see what the attempt itself records.
        let second = try await offCooperativePool(
            bench.runArguments(["--no-reconcile"]),
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
