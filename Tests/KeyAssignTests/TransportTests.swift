import Foundation
import Synchronization
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// The libcurl transport against the real sandbox over loopback: what each way an exchange can
/// end comes back as, and TLS with a private CA.
@Suite("Transport")
struct TransportTests {
    @Test("curl results: zero request bytes means not sent, anything else after a failure maybe sent")
    func resultMapping() {
        #expect(
            AssignClient.result(curlCode: 0, status: 200, requestBytes: 300, reply: [1], retryAfter: "2")
                == .response(status: 200, retryAfter: "2", body: [1]))
        guard
            case .notSent(let refused) = AssignClient.result(
                curlCode: 7, status: 0, requestBytes: 0, reply: [], retryAfter: nil)
        else {
            Issue.record("connection refused must be notSent")
            return
        }
        #expect(refused.hasPrefix("cannot connect to host (curl 7"))
        guard case .notSent = AssignClient.result(curlCode: 28, status: 0, requestBytes: 0, reply: [], retryAfter: nil)
        else {
            Issue.record("a timeout before anything was written must be notSent")
            return
        }
        guard
            case .tlsFailure(let tls) = AssignClient.result(
                curlCode: 60, status: 0, requestBytes: 0, reply: [], retryAfter: nil,
                detail: "SSL certificate problem: self-signed certificate")
        else {
            Issue.record("a refused certificate must be tlsFailure")
            return
        }
        #expect(tls == "SSL certificate problem: self-signed certificate (curl 60)")
        for code: Int32 in [28, 52, 55, 56, 42] {
            guard
                case .maybeSent = AssignClient.result(
                    curlCode: code, status: 0, requestBytes: 250, reply: [], retryAfter: nil)
            else {
                Issue.record("curl \(code) after the request was written must be maybeSent")
                continue
            }
        }
    }

    @Test("every answer, refusal and lost connection comes back as what it is")
    func outcomesAgainstTheSandbox() throws {
        let dir = try TemporaryDirectory()
        var configuration = SandboxConfiguration(
            stateDirectory: dir.path + "/sandbox", inventory: .keys(["k-1", "k-2"]))
        configuration.threads = 1
        // One token, refilled only after 100 s: the second request is a 429 however slowly the
        // machine gets to it.
        configuration.rateLimit = .init(rate: 0.01, burst: 1)
        let server = try SandboxServer.start(configuration)
        let client = try client(for: server)

        let first = send(client, key: "k-1")
        guard case .response(200, _, let body, _) = first else {
            Issue.record("expected a 200, got \(first)")
            return
        }
        #expect(String(decoding: body, as: UTF8.self).contains("\"signature\""))
        // The server's bucket is empty now: a 429 whose Retry-After header is read.
        guard case .response(429, let retryAfter?, _, _) = send(client, key: "k-2") else {
            Issue.record("expected a 429 with Retry-After")
            return
        }
        #expect(Int(retryAfter) != nil)
        server.shutdown()

        guard case .notSent(let text) = send(client, key: "k-2") else {
            Issue.record("a stopped server must give notSent")
            return
        }
        #expect(text.contains("cannot connect"))
    }

    @Test("a reply lost after the server processed the request is maybeSent")
    func dropAfterIsMaybeSent() throws {
        let dir = try TemporaryDirectory()
        var configuration = SandboxConfiguration(stateDirectory: dir.path + "/sandbox", inventory: .keys(["k-1"]))
        configuration.threads = 1
        configuration.faults.dropAfter = 1
        let server = try SandboxServer.start(configuration)
        defer { server.shutdown() }
        guard case .maybeSent = send(try client(for: server), key: "k-1") else {
            Issue.record("expected maybeSent")
            return
        }
    }

    @Test("a keep-alive connection lost after the server processed a request is never resent behind the runner's back")
    func noHiddenResendOnAReusedConnection() throws {
        let dir = try TemporaryDirectory()
        let keys = (0..<40).map { "k-\($0)" }
        var configuration = SandboxConfiguration(stateDirectory: dir.path + "/sandbox", inventory: .keys(keys))
        configuration.threads = 1
        configuration.faults.dropAfter = 0.5
        configuration.faults.seed = 7
        let server = try SandboxServer.start(configuration)
        defer { server.shutdown() }
        let verifier = ReplyVerifier(keyRing: try KeyRing(specs: [server.publicKeyPath]))
        // One connection slot, so that every request after a reply goes out on a reused connection.
        let client = try client(for: server, concurrency: 1)
        var lost = 0
        var assigned = 0
        var refused = 0
        for key in keys {
            switch send(client, key: key) {
            case .response(200, _, let body, _):
                guard case .trusted(let payload) = verifier.verify(body, maxAge: nil, now: Timestamps.now()) else {
                    Issue.record("untrusted reply for \(key)")
                    continue
                }
                // Each key is sent once: an 801 could only come from a second copy of the request.
                #expect(payload.code == 800, "\(key): code \(payload.code), so the request was sent twice")
                assigned += 1
            case .maybeSent(let text):
                lost += 1
                if text.contains("(curl 65") { refused += 1 }
            case let other:
                Issue.record("\(key): unexpected \(other)")
            }
        }
        #expect(lost > 5 && assigned > 5, "lost \(lost), assigned \(assigned)")
        // libcurl did try to resend (the guard refused it), so the test exercised the guard.
        #expect(refused > 0, "no resend was refused")
    }

    /// Every option is checked when the transport is made: libcurl refuses a URL over its 8 MB
    /// input limit, and that is a configuration error naming the option, not a run of failures.
    @Test("an option libcurl refuses is a configuration error when the transport is made")
    func refusedOptionIsAConfigurationError() throws {
        let endpoint = try ServerEndpoint(
            base: "http://127.0.0.1:9/" + String(repeating: "a", count: 8_000_001),
            allowInsecureHTTP: false)
        #expect {
            _ = try AssignClient(.init(endpoint: endpoint, apiKey: "k", concurrency: 1, timeout: 5))
        } throws: { error in
            guard let error = error as? KeyAssignError else { return false }
            return error.status == .config && error.message.hasPrefix("libcurl refused CURLOPT_URL: ")
        }
    }

    @Test("cancelAll completes every request, running or queued")
    func cancelAllCompletesEverything() throws {
        let dir = try TemporaryDirectory()
        var configuration = SandboxConfiguration(stateDirectory: dir.path + "/sandbox", inventory: .keys(["k-1"]))
        configuration.threads = 1
        configuration.faults.latency = .fixed(milliseconds: 5_000)
        let server = try SandboxServer.start(configuration)
        defer { server.shutdown() }
        let client = try client(for: server, concurrency: 2)
        let results = Mutex<[TransportResult]>([])
        let done = DispatchSemaphore(value: 0)
        for i in 0..<5 {
            client.send(AssignRequest(licenseKey: "k-\(i)", ownerName: nil, email: nil, idempotencyToken: "t-\(i)")) {
                result in
                results.withLock { $0.append(result) }
                done.signal()
            }
        }
        usleep(300_000)
        client.cancelAll()
        // Every completion comes (the wait's bound only keeps a hung transport from hanging the test).
        for _ in 0..<5 { #expect(done.wait(timeout: .now() + 30) == .success) }
        let all = results.withLock { $0 }
        #expect(all.count == 5)
        for result in all {
            switch result {
            case .maybeSent(let text), .notSent(let text): #expect(text.contains("cancelled"))
            case .response, .tlsFailure: Issue.record("nothing should have been answered: \(result)")
            }
        }
    }

    @Test("a longer reply is read to its end and stored capped")
    func longRepliesAreCapped() throws {
        let server = try PythonServer.fixedReply(size: 200_000)
        defer { server.stop() }
        let endpoint = try ServerEndpoint(base: "http://127.0.0.1:\(server.port)", allowInsecureHTTP: false)
        let client = try AssignClient(.init(endpoint: endpoint, apiKey: "k", concurrency: 1, timeout: 5))
        guard case .response(200, _, let body, _) = send(client, key: "k-1") else {
            Issue.record("expected a 200")
            return
        }
        #expect(body.count == AssignClient.maximumStoredReply)
    }

    @Test("https: a certificate not trusted is a configuration stop (exit 78, rows pending); trusted through --ca-file")
    func tlsWithAPrivateCA() throws {
        let bench = try RunnerBench(inventory: 6)
        let proxy = try PythonServer.tlsProxy(upstreamPort: bench.server.port)
        defer { proxy.stop() }
        let https = "https://127.0.0.1:\(proxy.port)"
        func run(_ extra: [String]) throws -> CLI.Result {
            var arguments = bench.runArguments(extra + ["--concurrency", "1"])
            arguments[arguments.firstIndex(of: bench.server.baseURL)!] = https
            return try CLI.run(arguments, environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
        }

        let untrusted = try run([])
        #expect(untrusted.status == 78, "stderr: \(untrusted.stderr)")
        #expect(untrusted.stderr.contains("certificate"), "stderr: \(untrusted.stderr)")
        #expect(untrusted.stderr.contains("--ca-file"), "stderr: \(untrusted.stderr)")
        // libcurl's own words name the check that failed.
        #expect(untrusted.stderr.contains("unable to get local issuer certificate"), "stderr: \(untrusted.stderr)")
        // Stopped at once: one request, its attempt refunded, every row still pending.
        #expect(try bench.stateCounts() == ["pending": 6])
        #expect(try bench.count("SELECT count(*) FROM work WHERE attempts <> 0") == 0)
        #expect(try bench.count("SELECT count(*) FROM attempts") == 1)
        #expect(
            try bench.count("SELECT count(*) FROM attempts WHERE outcome = 'config_stop' AND error LIKE '%(curl 60)%'")
                == 1)
        #expect(try bench.count("SELECT exit_status FROM runs") == 78)
        #expect(bench.server.ledger().totals.requests == 0)

        // Fixing the configuration is all it takes: no `keyassign retry`.
        let trusted = try run(["--ca-file", CLI.fixture("tls/ca.pem")])
        #expect(trusted.status == 0, "stderr: \(trusted.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 6])

        let notPEM = try run(["--ca-file", CLI.fixture("reply-800.json")])
        #expect(notPEM.status == 78)
        #expect(notPEM.stderr.contains("no PEM certificate"))
    }

    @Test("https: a certificate for another host name is a configuration stop too (exit 78, rows pending)")
    func tlsWrongHostName() throws {
        let bench = try RunnerBench(inventory: 4)
        // A loopback address that server.pem (127.0.0.1, localhost) does not name.
        let proxy = try PythonServer.tlsProxy(upstreamPort: bench.server.port, listenHost: "127.0.0.2")
        defer { proxy.stop() }
        var arguments = bench.runArguments(["--ca-file", CLI.fixture("tls/ca.pem"), "--max-attempts", "1"])
        arguments[arguments.firstIndex(of: bench.server.baseURL)!] = "https://127.0.0.2:\(proxy.port)"
        let result = try CLI.run(arguments, environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
        #expect(result.status == 78, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("host name"), "stderr: \(result.stderr)")
        #expect(result.stderr.contains("--ca-file"), "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["pending": 4])
        #expect(try bench.count("SELECT count(*) FROM work WHERE attempts <> 0") == 0)
        #expect(bench.server.ledger().totals.requests == 0)
    }

    private func client(for server: SandboxServer, concurrency: Int = 4) throws -> AssignClient {
        let endpoint = try ServerEndpoint(base: server.baseURL, allowInsecureHTTP: false)
        return try AssignClient(.init(endpoint: endpoint, apiKey: server.apiKey, concurrency: concurrency, timeout: 10))
    }

    private func send(_ client: AssignClient, key: String) -> TransportResult {
        let result = Mutex<TransportResult?>(nil)
        let done = DispatchSemaphore(value: 0)
        client.send(
            AssignRequest(
                licenseKey: key, ownerName: "Jane", email: "jane@example.com", idempotencyToken: UUID().uuidString)
        ) {
            reply in
            result.withLock { $0 = reply }
            done.signal()
        }
        _ = done.wait(timeout: .now() + 20)
        return result.withLock { $0 } ?? .maybeSent("no completion within 20 s")
    }
}
