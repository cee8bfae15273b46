import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// The sandbox faults issue 18 needs, each checked on the server's side of the story (its
/// ledger) against the real `keyassign`: a reply sent late after the key was assigned, a slow
/// listing, and a listing that leaves a share of the keys out (the same keys every time).
@Suite struct SandboxTimingFaultTests {
    @Test func aLateReplyAssignsTheKeyAndAnswersAfterTheClientsTimeout() throws {
        var faults = SandboxConfiguration.Faults()
        faults.lateReply = 1
        faults.lateReplyMilliseconds = 3_000
        let bench = try RunnerBench(inventory: 4)
        try bench.restart(faults: faults)
        _ = try bench.run(["--timeout", "1", "--max-attempts", "1", "--no-reconcile", "--max-wait", "0"])
        let ledger = bench.server.ledger()
        // The server did its part: every key assigned, every reply held back.
        #expect(ledger.totals.assigned == 4)
        #expect(ledger.faults.lateReply == 4)
        #expect(ledger.totals.repliesByCode["800"] == 4)
        // keyassign gave up on each before the reply came: none reads assigned from a reply.
        #expect(try bench.count("SELECT count(*) FROM work WHERE state = 'assigned'") == 0)
    }

    @Test func aPartialListingLeavesTheSameShareOutEveryTime() throws {
        var faults = SandboxConfiguration.Faults()
        faults.listingOmit = 0.5
        faults.seed = 7
        let bench = try RunnerBench(inventory: 200)
        try bench.restart(faults: faults)
        let endpoint = try ServerEndpoint(base: bench.server.baseURL, allowInsecureHTTP: false)
        let reconciler = Reconciler(
            client: ListingClient(
                endpoint: endpoint, apiKey: bench.server.apiKey, timeout: 5, caFile: nil, maxBytes: 1 << 24),
            verifier: ListingVerifier(keyRing: try KeyRing(specs: [bench.server.publicKeyPath])), maxClockSkew: 300)
        var counts: [Int] = []
        for _ in 0..<2 {
            guard case .success(let fetched) = try reconciler.fetch() else {
                Issue.record("the partial listing must still be a signed listing")
                return
            }
            counts.append(fetched.listing.index.count)
        }
        #expect(counts[0] == counts[1])
        #expect(counts[0] > 50 && counts[0] < 150, "listed \(counts[0]) of 200")
        let ledger = bench.server.ledger()
        #expect(ledger.faults.partialListings == 2)
        #expect(ledger.faults.keysOmitted == 2 * (200 - counts[0]))
    }

    @Test func aSlowListingIsHeldBackAndTheListingTimeoutCutsIt() throws {
        var faults = SandboxConfiguration.Faults()
        faults.listingDelayMilliseconds = 30_000
        let bench = try RunnerBench(inventory: 3)
        try bench.restart(faults: faults)
        let endpoint = try ServerEndpoint(base: bench.server.baseURL, allowInsecureHTTP: false)
        var client = ListingClient(
            endpoint: endpoint, apiKey: bench.server.apiKey, timeout: 1, caFile: nil, maxBytes: 1 << 24)
        client.listingTimeout = 2
        guard case .failed(let detail) = try client.fetch() else {
            Issue.record("a listing held back 30 s must not arrive within a 2 s --listing-timeout")
            return
        }
        #expect(detail.contains("did not begin to answer within 2 s"), "\(detail)")
        #expect(bench.server.ledger().listingRequests == 1)
    }

    @Test func theSandboxCommandTakesTheFaultsAsFlags() throws {
        for bad in [
            ["--late-reply", "1.5"], ["--listing-omit", "-0.1"], ["--late-reply-delay", "-1"],
            ["--listing-delay", "9999999"],
        ] {
            let result = try CLI.run(["sandbox", "--state-dir", "/nonexistent"] + bad)
            #expect(result.status == 64, "\(bad): \(result.stderr)")
        }
        let help = try CLI.run(["sandbox", "--help"])
        for flag in ["--late-reply", "--late-reply-delay", "--listing-delay", "--listing-omit"] {
            #expect(help.stdout.contains(flag), "\(flag) missing from --help")
        }
    }
}
