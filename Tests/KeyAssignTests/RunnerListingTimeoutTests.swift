import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Issue 18, item 5: a listing endpoint that never answers does not hold a run. The listing
/// has its own `--listing-timeout` and a low-speed limit, and its waiting for the server to
/// begin answering counts against `--max-wait` (never less than one `--timeout`). Before, a
/// run with `--timeout 2 --max-wait 5` sat 300 s on such a listing, holding the lock.
///
/// No wall-clock assertion: the CLI is given 90 s, far beyond what the bounds allow and far
/// below the old 300 s, and must have ended by itself, with the reason in its log.
@Suite struct RunnerListingTimeoutTests {
    /// 3 keys the server does not know (801, rejected) make the end-of-run reconciliation
    /// fetch the listing; the listing is held back for 10 minutes.
    static func hangingListing() throws -> RunnerBench {
        let bench = try RunnerBench(inventory: 5, unknown: 3)
        var faults = SandboxConfiguration.Faults()
        faults.listingDelayMilliseconds = 600_000
        try bench.restart(faults: faults)
        return bench
    }

    @Test func aListingThatNeverAnswersEndsTheRunWithinMaxWait() throws {
        let bench = try Self.hangingListing()
        let result = try CLI.run(
            bench.runArguments(["--timeout", "2", "--max-wait", "5"]),
            environment: ["KEYASSIGN_API_KEY": bench.server.apiKey], timeout: 90)
        #expect(result.status == 0, "the run must end by itself; stderr: \(result.stderr)")
        #expect(result.stderr.contains("did not begin to answer within"), "stderr: \(result.stderr)")
        #expect(result.stderr.contains("--max-wait"), "names the bound: \(result.stderr)")
        #expect(bench.server.ledger().listingRequests >= 1)
        // The assign calls were done; the listing's failure leaves rows as they are.
        #expect(try bench.stateCounts() == ["assigned": 5, "rejected": 3])
        // And the lock is free: the next writer gets in.
        let imported = try CLI.run(["import", "--db", bench.db, bench.dir.path + "/sales.csv"])
        #expect(imported.status == 0, "stderr: \(imported.stderr)")
    }

    @Test func reconcileHasItsOwnListingTimeout() throws {
        let bench = try Self.hangingListing()
        _ = try bench.run(["--no-reconcile"])
        let result = try CLI.run(
            [
                "reconcile", "--server", bench.server.baseURL, "--public-key", bench.server.publicKeyPath,
                "--db", bench.db, "--listing-timeout", "3",
            ],
            environment: ["KEYASSIGN_API_KEY": bench.server.apiKey], timeout: 90)
        #expect(result.status == 1, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("cannot fetch the key listing"), "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 5, "rejected": 3])
    }

    /// A listing that begins, then trickles (a proxy holding the connection, a server that
    /// stopped writing), is cut by the low-speed limit long before --listing-timeout.
    @Test func aListingThatStallsIsCutByTheLowSpeedLimit() throws {
        let script = """
            import socket, time
            server = socket.socket()
            server.bind(("127.0.0.1", 0))
            server.listen(4)
            print(server.getsockname()[1], flush=True)
            while True:
                conn, _ = server.accept()
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: 1000000\\r\\n\\r\\n{")
                try:
                    for _ in range(600):
                        time.sleep(0.5)
                        conn.sendall(b" ")
                except OSError:
                    pass
                conn.close()
            """
        let server = try PythonServer(["-c", script])
        defer { server.stop() }
        let endpoint = try ServerEndpoint(base: "http://127.0.0.1:\(server.port)", allowInsecureHTTP: false)
        var client = ListingClient(endpoint: endpoint, apiKey: "k", timeout: 5, caFile: nil, maxBytes: 1 << 24)
        client.lowSpeed = (bytesPerSecond: 100, seconds: 2)
        guard case .failed(let detail) = try client.fetch() else {
            Issue.record("a listing trickling 2 bytes/s must be cut")
            return
        }
        #expect(detail.contains("stalled: slower than 100 bytes/s for 2 s"), "\(detail)")
    }

    @Test func listingTimeoutIsCheckedAsAFlag() throws {
        let run = try CLI.run(
            ["run", "--server", "http://127.0.0.1:9", "--public-key", "/nonexistent", "--listing-timeout", "0"],
            environment: ["KEYASSIGN_API_KEY": "x"])
        #expect(run.status == 64, "stderr: \(run.stderr)")
        #expect(run.stderr.contains("--listing-timeout"), "stderr: \(run.stderr)")
        let help = try CLI.run(["run", "--help"])
        #expect(help.stdout.contains("--listing-timeout"))
    }
}
