import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Issue 19, item 6: listings are signed by `global`. A listing signed by a product's key (a
/// key keyassign has, under another name) is refused unless `--listing-key` names that key.
@Suite struct SecurityListingKeyTests {
    @Test func aListingSignedByAProductKeyIsRefusedUnlessListingKeySaysSo() throws {
        let bench = try ReconcileCLITests.uncertainBench(2)
        try bench.restart(listing: .product)
        func reconcile(_ extra: [String]) throws -> CLI.Result {
            try CLI.run(
                [
                    "reconcile", "--server", bench.server.baseURL, "--db", bench.db,
                    "--public-key", bench.server.publicKeyPath,
                    "--public-key", "product=" + bench.server.publicKeyPath,
                ] + extra,
                environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
        }
        let refused = try reconcile([])
        #expect(refused.status == 78, "\(refused.stdout)\(refused.stderr)")
        #expect(
            refused.stderr.contains("signed with key \"product\", but listings are signed by \"global\""),
            "\(refused.stderr)")
        #expect(try bench.stateCounts() == ["uncertain": 2])
        #expect(try bench.count("SELECT count(*) FROM listings") == 0)

        // A run's own reconciliation refuses it the same way.
        let run = try CLI.run(
            bench.runArguments(["--public-key", "product=" + bench.server.publicKeyPath]),
            environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
        #expect(run.stderr.contains("listings are signed by \"global\""), "\(run.stderr)")

        let accepted = try reconcile(["--listing-key", "product"])
        #expect(accepted.status == 0, "\(accepted.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 2])
    }
}
