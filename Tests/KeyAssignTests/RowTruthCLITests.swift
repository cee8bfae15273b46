import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Issue 18 (row truth) and issue 20, items 3 and 4 (stop early), through the real CLI against
/// the sandbox: a row's recorded state is true, or says that it is unknown, and what is unknown
/// is settled from signed evidence without a person.
@Suite struct RowTruthCLITests {
    static func text(_ bench: RunnerBench, _ sql: String) throws -> String {
        let statement = try bench.open().prepare(sql)
        guard try statement.step() else { return "" }
        return statement.string(0) ?? ""
    }

    /// `run` with the sandbox's server and API key, and only the given public key(s).
    static func run(_ bench: RunnerBench, server: String? = nil, publicKey: String? = nil, _ extra: [String] = [])
        throws -> CLI.Result
    {
        try CLI.run(
            [
                "run", "--server", server ?? bench.server.baseURL, "--public-key",
                publicKey ?? bench.server.publicKeyPath,
                "--db", bench.db, "--rate", "0", "--concurrency", "4", "--backoff-base", "0.02", "--backoff-cap", "0.2",
                "--timeout", "5",
            ] + extra,
            environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
    }

    /// Replaces the bench's sandbox by one with the same signing key and API key whose listing
    /// holds only `keys`: a listing scoped to another product, paginated, or cut short.
    static func serveListingOf(_ keys: [String], _ bench: RunnerBench) throws {
        bench.server.shutdown()
        let directory = bench.dir.path + "/partial-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for file in ["private.pem", "public.pem", "api-key"] {
            try FileManager.default.copyItem(atPath: bench.stateDirectory + "/" + file, toPath: directory + "/" + file)
        }
        var configuration = SandboxConfiguration(stateDirectory: directory, inventory: .keys(keys))
        configuration.threads = 1
        bench.server = try SandboxServer.start(configuration)
    }

    // MARK: issue 18

    @Test("item 1: a server that assigns and answers after --timeout: the rows end settled, never failed")
    func aServerSlowerThanTheTimeoutLeavesNoRowFailed() throws {
        var slow = SandboxConfiguration.Faults()
        slow.latency = .fixed(milliseconds: 1500)
        let bench = try RunnerBench(inventory: 3)
        try bench.restart(faults: slow)
        let result = try Self.run(bench, ["--timeout", "1", "--max-attempts", "2"])
        // The server assigned every key; every attempt timed out.
        #expect(bench.server.ledger().totals.assigned == 3)
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE outcome = 'assigned'") == 0)
        // Maybe delivered is never failed: the run's own listing settles them as this buyer's.
        #expect(try bench.count("SELECT count(*) FROM work WHERE state = 'failed'") == 0)
        #expect(try bench.stateCounts() == ["assigned": 3], "\(result.stderr)")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            try bench.count(
                "SELECT count(*) FROM settlements WHERE rule = 'held_by_buyer' AND from_state = 'uncertain'") == 3)
    }

    /// A run killed during its start-of-run listing has already turned its predecessor's
    /// in-flight rows into `retry` with `maybe_delivered = 1`; the next run recovers nothing in
    /// flight, and must still check them against the listing before resending any (seen in
    /// scripts/crashloop: 29 keys resent after the server had assigned them).
    @Test("a dead run's maybe-delivered retries are checked against the listing by the next run, not resent")
    func maybeDeliveredRetriesLeftByADeadRunAreSettledFirst() throws {
        let bench = try RunnerBench(inventory: 6)
        let first = try Self.run(bench)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 6])
        // What a killed run's rescue leaves: rows back in retry, maybe delivered, no run holding them.
        try bench.open().execute(
            "UPDATE work SET state = 'retry', maybe_delivered = 1, next_attempt_at = 0, run_id = NULL, in_flight_since = NULL"
        )
        try bench.restart()
        let second = try Self.run(bench)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(bench.server.ledger().totals.requests == 0, "\(second.stderr)")
        #expect(bench.server.ledger().listingRequests >= 1)
        #expect(try bench.stateCounts() == ["assigned": 6], "\(second.stderr)")
    }

    @Test("item 1: when no listing settles them, they stay uncertain, and the next run settles them without resending")
    func uncertainRowsFromTimeoutsAreSettledByTheNextRun() throws {
        var slow = SandboxConfiguration.Faults()
        slow.latency = .fixed(milliseconds: 1500)
        let bench = try RunnerBench(inventory: 3)
        try bench.restart(faults: slow, listing: .absent)
        let first = try Self.run(bench, ["--timeout", "1", "--max-attempts", "2"])
        #expect(first.status == 1, "\(first.stderr)")
        #expect(try bench.stateCounts() == ["uncertain": 3])
        #expect(
            try bench.count("SELECT count(*) FROM work WHERE last_error LIKE 'gave up after 2 attempts in this run%'")
                == 3)
        try bench.restart()
        let second = try Self.run(bench)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 3])
        // Settled from the listing before anything was sent: no request for a key already assigned
        // (the restarted sandbox's ledger counts this run only).
        #expect(bench.server.ledger().totals.requests == 0)
        #expect(bench.server.ledger().listingRequests == 1)
    }

    @Test("item 2: a listing that leaves keys out never rejects a row our attempts may have assigned")
    func aPartialListingLeavesMaybeDeliveredRowsUncertain() throws {
        let bench = try ReconcileCLITests.uncertainBench(2)
        // The listing no longer shows these keys (scoped, paginated, cut short).
        try Self.serveListingOf([], bench)
        let result = try bench.reconcile()
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
        #expect(try bench.stateCounts() == ["uncertain": 2])
        #expect(try bench.count("SELECT count(*) FROM work WHERE last_error LIKE 'not in the server''s listing%'") == 2)
        #expect(
            try bench.count("SELECT count(*) FROM settlements WHERE rule = 'unknown_key' AND to_state = 'uncertain'")
                == 2)
        // A run does the same, and audit holds the settlements to the rules.
        let run = try bench.run()
        #expect(run.stderr.contains("2 checked"), "\(run.stderr)")
        #expect(try bench.stateCounts() == ["uncertain": 2])
        #expect(try CLI.run(["audit", "--db", bench.db, "--public-key", bench.server.publicKeyPath]).status == 0)
    }

    @Test("item 4: reconcile --state assigned confirms assigned rows by key and email, and exits 4 on a contradiction")
    func assignedRowsAreConfirmedAgainstTheListing() throws {
        let bench = try RunnerBench(inventory: 3)
        let (released, taken, real) = (bench.inventory[0], bench.inventory[1], bench.inventory[2])
        try bench.server.preassign(key: taken, ownerName: "Mallory Other", email: "mallory@other.example")
        // As if a replayed signed 800 had been accepted for two rows: recorded assigned, though
        // the server never assigned them to this buyer.
        try bench.open().execute("UPDATE work SET state = 'assigned' WHERE license_key IN ('\(released)', '\(taken)')")
        #expect(try bench.run().status == 0)
        #expect(try Self.text(bench, "SELECT state FROM work WHERE license_key = '\(real)'") == "assigned")

        let result = try bench.reconcile(["--state", "assigned"])
        #expect(result.status == 4, "\(result.stdout)\(result.stderr)")
        #expect(try Self.text(bench, "SELECT state FROM work WHERE license_key = '\(real)'") == "assigned")
        #expect(try Self.text(bench, "SELECT state FROM work WHERE license_key = '\(released)'") == "retry")
        #expect(try Self.text(bench, "SELECT state FROM work WHERE license_key = '\(taken)'") == "rejected")
        let reason = try Self.text(bench, "SELECT last_error FROM work WHERE license_key = '\(taken)'")
        #expect(
            reason.contains("changed after our assignment") && reason.contains("mallory@other.example")
                && reason.contains("assigned_at 20"), "\(reason)")
        #expect(result.stdout.contains("\(taken)\tassigned -> rejected\theld_by_other"))
        // The released key is sent again, and this time the server does assign it.
        #expect(try bench.run().status == 0)
        #expect(try Self.text(bench, "SELECT state FROM work WHERE license_key = '\(released)'") == "assigned")
        #expect(bench.server.ledger().keys[released]?.requests == 1)
        // Nothing left to contradict.
        #expect(try bench.reconcile(["--state", "assigned"]).status == 0)
    }

    @Test("item 4: a run confirms the rows it assigned against the listing it fetches anyway, with no extra fetch")
    func aRunConfirmsItsOwnAssignmentsWithTheListingItFetches() throws {
        let bench = try RunnerBench(inventory: 3)
        try bench.server.preassign(key: bench.inventory[0], ownerName: "Mallory Other", email: "mallory@other.example")
        let result = try bench.run()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 2, "rejected": 1])
        // One listing: the rejected row explained, and the two assigned rows confirmed by it.
        #expect(bench.server.ledger().listingRequests == 1)
        #expect(result.stderr.contains("3 checked"), "\(result.stderr)")
        // Nothing uncertain and nothing rejected: no listing is fetched for confirmation alone.
        #expect(try bench.run().status == 0)
        #expect(bench.server.ledger().listingRequests == 1)
    }

    @Test("item 6: a night of 503s, then a good night: the rows are sent again, with no manual step")
    func aRerunRetriesWhatFailedForAPassingReason() throws {
        var down = SandboxConfiguration.Faults()
        down.fail5xx = 1
        let bench = try RunnerBench(inventory: 6)
        try bench.restart(faults: down)
        let bad = try Self.run(bench, ["--max-attempts", "2", "--timeout", "1"])
        #expect(bad.status == 1)
        #expect(try bench.count("SELECT count(*) FROM work WHERE state IN ('assigned', 'rejected', 'failed')") == 0)
        // Rows that older versions left `failed` for a passing reason come back too; a refusal of
        // the request itself stays until `keyassign retry`.
        let keys = bench.inventory
        try bench.open().execute(
            """
            UPDATE work SET state = 'failed', maybe_delivered = 0, last_http_status = NULL, last_code = NULL,
                last_error = 'gave up after 5 attempts: timed out' WHERE license_key = '\(keys[0])';
            UPDATE work SET state = 'failed', maybe_delivered = 0, last_http_status = 403, last_code = NULL,
                last_error = 'gave up after 5 attempts: HTTP 403 without a signed reply' WHERE license_key = '\(keys[1])';
            UPDATE work SET state = 'failed', last_http_status = 422, last_code = NULL,
                last_error = 'HTTP 422' WHERE license_key = '\(keys[2])';
            UPDATE work SET state = 'failed', last_http_status = 400, last_code = 800,
                last_error = 'HTTP 400, with a verified code 800' WHERE license_key = '\(keys[3])';
            """)
        // Past the last attempt's start plus its --timeout, and the listing's signed second (the race rule).
        Thread.sleep(forTimeInterval: 2.2)
        try bench.restart()
        let summaryPath = bench.dir.path + "/summary.json"
        let metrics = bench.dir.path + "/keyassign.prom"
        let good = try Self.run(
            bench,
            [
                "--max-attempts", "2", "--timeout", "1", "--summary-json", summaryPath,
                "--metrics-file", metrics,
            ])
        #expect(good.status == 0, "\(good.stderr)")
        let states = try bench.states()
        #expect(states[keys[0]] == "assigned" && states[keys[1]] == "assigned")
        #expect(states[keys[4]] == "assigned" && states[keys[5]] == "assigned")
        #expect(states[keys[2]] == "failed" && states[keys[3]] == "failed")
        // A fresh --max-attempts: the rows the listing sent back count from 0 again.
        #expect(try bench.count("SELECT count(*) FROM work WHERE attempts = 1 AND state = 'assigned'") == 4)
        // The two rows that stay failed are counted where monitoring looks.
        let summary = try String(contentsOfFile: summaryPath, encoding: .utf8)
        #expect(summary.contains("\"failed_earlier\" : 2"), "\(summary)")
        #expect(try String(contentsOfFile: metrics, encoding: .utf8).contains("keyassign_rows_failed_earlier 2"))
        let status = try CLI.run(["status", "--db", bench.db])
        #expect(
            status.stdout.contains("failed, final: keyassign retry") && status.stdout.contains("2"), "\(status.stdout)")
    }

    @Test("item 6: a verified code nobody documented is failed that night, and the next run's listing settles it")
    func anUndocumentedCodeIsSettledByTheNextRun() throws {
        var odd = SandboxConfiguration.Faults()
        odd.undocumentedCode = 1
        let bench = try RunnerBench(inventory: 3)
        try bench.restart(faults: odd)
        #expect(try bench.run().status == 1)
        // Recorded as received: the server assigned the keys, then answered 899.
        #expect(try bench.stateCounts() == ["failed": 3])
        #expect(try bench.count("SELECT count(*) FROM work WHERE last_code = 899 AND maybe_delivered = 1") == 3)
        try bench.restart()
        let next = try bench.run()
        #expect(next.status == 0, "\(next.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 3])
        #expect(bench.server.ledger().totals.requests == 0)
    }

    // MARK: issue 20, items 3 and 4

    @Test("item 3: a wrong --public-key stops the run after a handful of replies, naming the key's fingerprint")
    func aWrongPublicKeyStopsEarly() throws {
        let bench = try RunnerBench(inventory: 40)
        let wrong = bench.dir.path + "/wrong.pem"
        try TestKeys.other2048.publicKeyPEM.write(toFile: wrong, atomically: true, encoding: .utf8)
        let fingerprint = try #require(try KeyRing(specs: [wrong]).signingKeys.first).sha256
        let result = try Self.run(bench, publicKey: wrong)
        #expect(result.status == 78, "\(result.stderr)")
        #expect(
            result.stderr.contains("--public-key") && result.stderr.contains("sha256:\(fingerprint)"),
            "\(result.stderr)")
        let sent = bench.server.ledger().totals.requests
        #expect(sent < 20, "\(sent) requests")
        // The rows sent were assigned by the server: maybe delivered, so uncertain, never failed.
        #expect(try bench.count("SELECT count(*) FROM work WHERE state IN ('failed', 'rejected', 'assigned')") == 0)
        #expect(
            try bench.count("SELECT count(*) FROM work WHERE state = 'uncertain'")
                == bench.server.ledger().totals.assigned)
        // With the right key, the listing settles them without a second request.
        let fixed = try bench.run()
        #expect(fixed.status == 0, "\(fixed.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 40])
        #expect(bench.server.ledger().keys.values.allSatisfy { $0.requestsAfterAssignment == 0 })
    }

    @Test("item 3: a clock far from the server's stops the run, giving the offset and pointing at NTP")
    func aWrongClockStopsEarly() throws {
        var stale = SandboxConfiguration.Faults()
        stale.stale = 1
        let bench = try RunnerBench(inventory: 20)
        try bench.restart(faults: stale)
        let result = try Self.run(bench)
        #expect(result.status == 78, "\(result.stderr)")
        #expect(result.stderr.contains("Check NTP, or --max-clock-skew"), "\(result.stderr)")
        // The sandbox signs an hour in the past: the local clock reads 3600 s ahead (±2 s).
        #expect(
            (3598...3602).contains { result.stderr.contains("\($0) s ahead of the server's signed timestamps") },
            "\(result.stderr)")
        #expect(bench.server.ledger().totals.requests < 20)
        #expect(try bench.count("SELECT count(*) FROM work WHERE state = 'failed'") == 0)
    }

    @Test("item 4: a wrong --server path stops after a handful of 404s, naming the URL; the rows stay pending")
    func aWrongServerPathStopsEarlyWithRowsPending() throws {
        let bench = try RunnerBench(inventory: 30)
        let url = bench.server.baseURL + "/keymanager"
        let result = try Self.run(bench, server: url)
        #expect(result.status == 78, "\(result.stderr)")
        #expect(
            result.stderr.contains(url + "/api/v1/assign-license-key") && result.stderr.contains("--server"),
            "\(result.stderr)")
        #expect(result.stderr.contains("HTTP 404"))
        #expect(try bench.stateCounts() == ["pending": 30])
        #expect(try bench.count("SELECT count(*) FROM work WHERE attempts <> 0 OR maybe_delivered <> 0") == 0)
        #expect(
            try bench.count("SELECT count(*) FROM attempts WHERE outcome = 'config_stop' AND http_status = 404")
                >= EarlyStop.threshold)
        #expect(try bench.count("SELECT count(*) FROM attempts") < 15)
    }

    @Test(
        "item 4: a --server that answers every request with an HTML page (a website, not the API) stops early; rows pending"
    )
    func anHTMLPageInsteadOfJSONStopsEarly() throws {
        let bench = try RunnerBench(inventory: 30)
        // A web site's catch-all page, as a shop front or a single-page app answers any path.
        let site = try PythonServer([
            "-c",
            """
            import http.server
            page = b"<!DOCTYPE html><html><head><title>Shop</title></head><body>Welcome</body></html>"
            class H(http.server.BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"
                def answer(self):
                    self.rfile.read(int(self.headers.get("Content-Length", "0")))
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                do_POST = answer
                do_GET = answer
                def log_message(self, *args): pass
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
            print(server.server_address[1], flush=True)
            server.serve_forever()
            """,
        ])
        defer { site.stop() }
        let url = "http://127.0.0.1:\(site.port)"
        let result = try Self.run(bench, server: url)
        #expect(result.status == 78, "\(result.stderr)")
        #expect(result.stderr.contains("an HTML page instead of JSON (HTTP 200)"), "\(result.stderr)")
        #expect(result.stderr.contains(url + "/api/v1/assign-license-key"), "\(result.stderr)")
        #expect(try bench.stateCounts() == ["pending": 30])
        #expect(try bench.count("SELECT count(*) FROM work WHERE attempts <> 0 OR maybe_delivered <> 0") == 0)
        #expect(try bench.count("SELECT count(*) FROM attempts") < 15)
    }

    @Test("item 4: --server given as the full endpoint URL reaches the endpoint")
    func theFullEndpointURLIsAccepted() throws {
        let bench = try RunnerBench(inventory: 3)
        let result = try Self.run(bench, server: bench.server.baseURL + "/api/v1/assign-license-key")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 3])
    }
}
