import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

@Suite struct SandboxServerTests {
    private func payload(_ verdict: ReplyVerdict) -> SignedPayload? {
        if case .trusted(let payload) = verdict { return payload }
        return nil
    }

    @Test func assignsOnceThenAnswers801WithSignaturesFromItsOwnKey() async throws {
        let sandbox = try RunningSandbox(keys: ["KEY-1"])
        let apiKey = sandbox.server.apiKey
        // Freshness as an order, not a window on a clock read later: the reply is signed between
        // the request leaving and the reply arriving (whole seconds), however long a loaded
        // machine takes in between or before this test looks. The replies' codes and escaping
        // are verified without a freshness check (`maxAge: nil`) for the same reason.
        let sent = Timestamps.now()
        let first = try await SandboxHTTP.post(
            sandbox.assignURL,
            form: [
                ("api_key", apiKey), ("license_key", "KEY-1"), ("owner_name", "Ada Lovelace"),
                ("email", "ada@example.com"),
            ],
            headers: ["Idempotency-Key": "row-1-attempt-1"])
        #expect(first.status == 200)
        let received = Timestamps.now()
        let assigned = try #require(payload(sandbox.verifier.verify(first.body, maxAge: nil)))
        #expect(assigned.code == 800)
        #expect(
            Double(assigned.timestamp) >= sent.rounded(.down) && Double(assigned.timestamp) <= received.rounded(.up))
        #expect(assigned.message == "License key assigned")
        #expect(assigned.keyName == "global")

        let second = try await SandboxHTTP.post(
            sandbox.assignURL, form: [("api_key", apiKey), ("license_key", "KEY-1")])
        #expect(second.status == 200)
        #expect(payload(sandbox.verifier.verify(second.body, maxAge: nil))?.code == 801)

        let ledger = sandbox.server.ledger()
        let entry = try #require(ledger.keys["KEY-1"])
        #expect(entry.assigned)
        #expect(entry.requests == 2)
        #expect(entry.requestsAfterAssignment == 1)
        #expect(entry.ownerName == "Ada Lovelace")
        #expect(entry.email == "ada@example.com")
        #expect(entry.assignedAt != nil)
        #expect(entry.idempotencyKeys == ["row-1-attempt-1"])
        #expect(ledger.totals.requests == 2)
        #expect(ledger.totals.assigned == 1)
        #expect(ledger.totals.repliesByCode == ["800": 1, "801": 1])
    }

    @Test func unknownOrMissingLicenseKeyGets801() async throws {
        let sandbox = try RunningSandbox(keys: ["KEY-1"])
        let unknown = try await SandboxHTTP.post(
            sandbox.assignURL,
            form: [("api_key", sandbox.server.apiKey), ("license_key", "NOT-IN-INVENTORY")])
        #expect(payload(sandbox.verifier.verify(unknown.body, maxAge: nil))?.code == 801)
        let missing = try await SandboxHTTP.post(sandbox.assignURL, form: [("api_key", sandbox.server.apiKey)])
        #expect(missing.status == 200)
        #expect(payload(sandbox.verifier.verify(missing.body, maxAge: nil))?.code == 801)
        #expect(sandbox.server.ledger().keys["KEY-1"] == nil)
    }

    @Test func wrongOrMissingAPIKeyGets401WithSignedCode100() async throws {
        let sandbox = try RunningSandbox(keys: ["KEY-1"])
        let wrong = try await SandboxHTTP.post(
            sandbox.assignURL, form: [("api_key", "not-the-key"), ("license_key", "KEY-1")])
        #expect(wrong.status == 401)
        #expect(
            payload(sandbox.verifier.verify(wrong.body, maxAge: nil)).map { ($0.code, $0.message) } ?? (0, "")
                == (100, "Invalid API key"))
        let missing = try await SandboxHTTP.post(sandbox.assignURL, form: [("license_key", "KEY-1")])
        #expect(missing.status == 401)
        #expect(payload(sandbox.verifier.verify(missing.body, maxAge: nil))?.code == 100)
        let wrongBearer = try await SandboxHTTP.post(
            sandbox.assignURL,
            form: [("api_key", sandbox.server.apiKey), ("license_key", "KEY-1")],
            headers: ["Authorization": "Bearer not-the-key"])
        #expect(wrongBearer.status == 401)
        #expect(sandbox.server.ledger().keys["KEY-1"]?.assigned == false)

        // The header alone is enough.
        let bearer = try await SandboxHTTP.post(
            sandbox.assignURL, form: [("license_key", "KEY-1")],
            headers: ["Authorization": "Bearer " + sandbox.server.apiKey])
        #expect(payload(sandbox.verifier.verify(bearer.body, maxAge: nil))?.code == 800)
    }

    @Test func overItsRateItAnswers429WithRetryAfter() async throws {
        // A token every 1,000 s: however slow a loaded test machine is (an awaiting test can wait
        // minutes for a cooperative thread while synchronous tests run), the third request finds none.
        let sandbox = try RunningSandbox(keys: ["A", "B", "C"]) { $0.rateLimit = .init(rate: 0.001, burst: 2) }
        var statuses: [Int] = []
        var limited: HTTPResult?
        for key in ["A", "B", "C"] {
            let result = try await SandboxHTTP.post(
                sandbox.assignURL, form: [("api_key", sandbox.server.apiKey), ("license_key", key)])
            statuses.append(result.status)
            if result.status == 429 { limited = result }
        }
        #expect(statuses == [200, 200, 429])
        let reply = try #require(limited)
        let retryAfter = try #require(reply.headers["retry-after"].flatMap { Int($0) })
        #expect(retryAfter >= 1 && retryAfter <= 1000)
        let body = try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any]
        #expect(body?["retry_after"] as? Int == retryAfter)
        let ledger = sandbox.server.ledger()
        #expect(ledger.rateLimited == 1)
        #expect(ledger.keys["C"]?.assigned == false)
        #expect(ledger.keys["C"]?.requests == 1)
    }

    @Test func dropAfterAssignsButNeverReplies() async throws {
        let sandbox = try RunningSandbox(keys: ["KEY-1"]) { $0.faults.dropAfter = 1 }
        await #expect(throws: (any Error).self) {
            _ = try await SandboxHTTP.post(
                sandbox.assignURL, form: [("api_key", sandbox.server.apiKey), ("license_key", "KEY-1")])
        }
        let ledger = sandbox.server.ledger()
        #expect(ledger.keys["KEY-1"]?.assigned == true)
        #expect(ledger.faults.dropAfter == 1)
        #expect(ledger.totals.repliesByCode.isEmpty)
    }

    @Test func dropBeforeAnd5xxDoNotAssign() async throws {
        let dropping = try RunningSandbox(keys: ["KEY-1"]) { $0.faults.dropBefore = 1 }
        await #expect(throws: (any Error).self) {
            _ = try await SandboxHTTP.post(
                dropping.assignURL, form: [("api_key", dropping.server.apiKey), ("license_key", "KEY-1")])
        }
        #expect(dropping.server.ledger().keys["KEY-1"]?.assigned == false)
        #expect(dropping.server.ledger().faults.dropBefore == 1)

        let failing = try RunningSandbox(keys: ["KEY-1"]) { $0.faults.fail5xx = 1 }
        let reply = try await SandboxHTTP.post(
            failing.assignURL, form: [("api_key", failing.server.apiKey), ("license_key", "KEY-1")])
        #expect(reply.status == 503)
        #expect(failing.server.ledger().keys["KEY-1"]?.assigned == false)
        #expect(failing.server.ledger().faults.fail5xx == 1)
    }

    @Test func badSignatureAndStaleRepliesFailVerification() async throws {
        let corrupt = try RunningSandbox(keys: ["KEY-1"]) { $0.faults.badSignature = 1 }
        let bad = try await SandboxHTTP.post(
            corrupt.assignURL, form: [("api_key", corrupt.server.apiKey), ("license_key", "KEY-1")])
        #expect(bad.status == 200)
        if case .untrusted(let reason, _) = corrupt.verifier.verify(bad.body, maxAge: nil) {
            #expect(reason == .badSignature)
        } else {
            Issue.record("a reply with a flipped signature bit was trusted")
        }
        #expect(corrupt.server.ledger().keys["KEY-1"]?.assigned == true)

        let old = try RunningSandbox(keys: ["KEY-1"]) { $0.faults.stale = 1 }
        // The server signs "an hour before it answered": between an hour before the request
        // and an hour after the reply, however long a loaded machine takes in between.
        let sent = Timestamps.now()
        let stale = try await SandboxHTTP.post(
            old.assignURL, form: [("api_key", old.server.apiKey), ("license_key", "KEY-1")])
        let received = Timestamps.now()
        // Signed properly: without a freshness check it is trusted, with one it is not.
        let signed = try #require(payload(old.verifier.verify(stale.body)))
        #expect(signed.code == 800)
        #expect(Double(signed.timestamp) >= (sent - 3600).rounded(.down) - 1)
        #expect(Double(signed.timestamp) <= received - 3600 + 1)
        if case .untrusted(let reason, _) = old.verifier.verify(stale.body, maxAge: 300) {
            #expect(reason == .stale)
        } else {
            Issue.record("a reply one hour old passed a 300 s freshness check")
        }
        #expect(old.server.ledger().faults.stale == 1)
    }

    @Test func fixedLatencyDelaysTheReply() async throws {
        let sandbox = try RunningSandbox(keys: ["KEY-1"]) { $0.faults.latency = .fixed(milliseconds: 300) }
        let started = Timestamps.monotonic()
        let reply = try await SandboxHTTP.post(
            sandbox.assignURL, form: [("api_key", sandbox.server.apiKey), ("license_key", "KEY-1")])
        #expect(Timestamps.monotonic() - started >= 0.3)
        #expect(reply.status == 200)
        #expect(sandbox.server.ledger().faults.latency == 1)
    }

    @Test func aRestartedSandboxRemembersItsAssignments() async throws {
        let directory = try TemporaryDirectory()
        var apiKey = ""
        var publicKey = ""
        do {
            let sandbox = try RunningSandbox(keys: ["KEY-1", "KEY-2"], directory: directory)
            apiKey = sandbox.server.apiKey
            publicKey = try String(contentsOfFile: sandbox.server.publicKeyPath, encoding: .utf8)
            let reply = try await SandboxHTTP.post(
                sandbox.assignURL, form: [("api_key", apiKey), ("license_key", "KEY-1"), ("owner_name", "Ada")])
            #expect(payload(sandbox.verifier.verify(reply.body, maxAge: nil))?.code == 800)
            try sandbox.server.preassign(key: "SOLD-EARLIER", ownerName: "Grace", email: nil)
            sandbox.server.shutdown()
        }
        let again = try RunningSandbox(keys: ["KEY-1", "KEY-2"], directory: directory)
        #expect(again.server.apiKey == apiKey)
        #expect(try String(contentsOfFile: again.server.publicKeyPath, encoding: .utf8) == publicKey)
        #expect(again.server.ledger().keys["KEY-1"]?.ownerName == "Ada")
        for key in ["KEY-1", "SOLD-EARLIER"] {
            let reply = try await SandboxHTTP.post(again.assignURL, form: [("api_key", apiKey), ("license_key", key)])
            #expect(payload(again.verifier.verify(reply.body, maxAge: nil))?.code == 801)
        }
        let fresh = try await SandboxHTTP.post(again.assignURL, form: [("api_key", apiKey), ("license_key", "KEY-2")])
        #expect(payload(again.verifier.verify(fresh.body, maxAge: nil))?.code == 800)
        #expect(again.server.ledger().keys["KEY-1"]?.requestsAfterAssignment == 1)
    }

    @Test func acceptsJSONAndMultipartBodies() async throws {
        let sandbox = try RunningSandbox(keys: ["JSON-KEY", "MULTIPART-KEY"])
        let json = try JSONSerialization.data(withJSONObject: [
            "api_key": sandbox.server.apiKey, "license_key": "JSON-KEY", "owner_name": "J. Son",
        ])
        let jsonReply = try await SandboxHTTP.send(
            sandbox.assignURL, method: "POST", body: json,
            headers: ["Content-Type": "application/json"])
        #expect(payload(sandbox.verifier.verify(jsonReply.body, maxAge: nil))?.code == 800)

        let boundary = "----keyassign-test-boundary"
        var multipart = ""
        for (name, value) in [
            ("api_key", sandbox.server.apiKey), ("license_key", "MULTIPART-KEY"), ("email", "m@example.com"),
        ] {
            multipart += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n"
        }
        multipart += "--\(boundary)--\r\n"
        let multipartReply = try await SandboxHTTP.send(
            sandbox.assignURL, method: "POST", body: Data(multipart.utf8),
            headers: ["Content-Type": "multipart/form-data; boundary=\(boundary)"])
        #expect(payload(sandbox.verifier.verify(multipartReply.body, maxAge: nil))?.code == 800)

        let ledger = sandbox.server.ledger()
        #expect(ledger.keys["JSON-KEY"]?.ownerName == "J. Son")
        #expect(ledger.keys["MULTIPART-KEY"]?.email == "m@example.com")
    }

    @Test func otherPathsAndMethodsAre404And405AndTheLedgerIsServed() async throws {
        let sandbox = try RunningSandbox(keys: ["KEY-1"])
        let missing = try await SandboxHTTP.send(URL(string: sandbox.server.baseURL + "/nope")!, method: "GET")
        #expect(missing.status == 404)
        let wrongMethod = try await SandboxHTTP.send(sandbox.assignURL, method: "GET")
        #expect(wrongMethod.status == 405)
        _ = try await SandboxHTTP.post(
            sandbox.assignURL, form: [("api_key", sandbox.server.apiKey), ("license_key", "KEY-1")])
        let ledger = try await SandboxHTTP.send(
            URL(string: sandbox.server.baseURL + "/__sandbox/ledger")!, method: "GET")
        #expect(ledger.status == 200)
        let decoded = try JSONDecoder().decode(SandboxLedger.self, from: Data(ledger.body))
        #expect(decoded == sandbox.server.ledger())
        #expect(decoded.keys["KEY-1"]?.assigned == true)
        let object = try JSONSerialization.jsonObject(with: Data(ledger.body)) as? [String: Any]
        let entry = (object?["keys"] as? [String: Any])?["KEY-1"] as? [String: Any]
        #expect(
            entry?.keys.sorted() == [
                "assigned", "assigned_at", "email", "idempotency_keys", "owner_name",
                "requests", "requests_after_assignment",
            ])
    }

    @Test func concurrentRequestsAssignEachKeyExactlyOnce() async throws {
        let keys = (0..<20).map { "KEY-\($0)" }
        let sandbox = try RunningSandbox(keys: keys)
        let apiKey = sandbox.server.apiKey
        let url = sandbox.assignURL
        let verifier = sandbox.verifier
        let codes = try await withThrowingTaskGroup(of: Int.self) { group in
            for round in 0..<5 {
                for key in keys {
                    group.addTask {
                        let reply = try await SandboxHTTP.post(
                            url, form: [("api_key", apiKey), ("license_key", key)],
                            headers: ["Idempotency-Key": "\(key)-\(round)"])
                        guard case .trusted(let payload) = verifier.verify(reply.body, maxAge: nil) else { return -1 }
                        return payload.code
                    }
                }
            }
            var codes: [Int] = []
            for try await code in group { codes.append(code) }
            return codes
        }
        #expect(codes.filter { $0 == 800 }.count == 20)
        #expect(codes.filter { $0 == 801 }.count == 80)
        let ledger = sandbox.server.ledger()
        #expect(ledger.totals.assigned == 20)
        #expect(keys.allSatisfy { ledger.keys[$0]?.requests == 5 && ledger.keys[$0]?.requestsAfterAssignment == 4 })
        #expect(keys.allSatisfy { ledger.keys[$0]?.idempotencyKeys.count == 5 })
        let lines = try String(contentsOfFile: sandbox.server.stateDirectory + "/assignments.jsonl", encoding: .utf8)
            .split(separator: "\n")
        #expect(lines.count == 20)
    }

    @Test func anAPIKeyFileReplacesTheGeneratedKey() async throws {
        let directory = try TemporaryDirectory()
        try "  my-own-api-key \n".write(toFile: directory.path + "/key.txt", atomically: true, encoding: .utf8)
        let sandbox = try RunningSandbox(keys: ["KEY-1"], directory: directory) {
            $0.apiKeyFile = directory.path + "/key.txt"
        }
        #expect(sandbox.server.apiKey == "my-own-api-key")
        #expect(!FileManager.default.fileExists(atPath: sandbox.server.stateDirectory + "/api-key"))
        let reply = try await SandboxHTTP.post(
            sandbox.assignURL, form: [("api_key", "my-own-api-key"), ("license_key", "KEY-1")])
        #expect(payload(sandbox.verifier.verify(reply.body, maxAge: nil))?.code == 800)
    }

    @Test func keepAliveServesPipelinedRequestsOnOneConnection() throws {
        let sandbox = try RunningSandbox(keys: ["A", "B"])
        let connection = try RawConnection(port: sandbox.server.port)
        var requests = ""
        for key in ["A", "B", "A"] {
            let body = "api_key=\(sandbox.server.apiKey)&license_key=\(key)"
            requests +=
                "POST /api/v1/assign-license-key HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        }
        connection.send(requests)
        let responses = connection.readResponses(3)
        #expect(responses.count == 3)
        let codes = responses.compactMap { response -> Int? in
            guard let body = response.range(of: "\r\n\r\n").map({ response[$0.upperBound...] }) else { return nil }
            return payload(sandbox.verifier.verify(Array(body.utf8), maxAge: nil))?.code
        }
        #expect(codes == [800, 800, 801])
        #expect(responses.allSatisfy { !$0.lowercased().contains("connection: close") })
    }
}
