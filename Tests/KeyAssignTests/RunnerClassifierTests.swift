import Foundation
import Testing
@testable import KeyAssign

/// The decision table of the runner: (transport result, verdict, maybe_delivered) → outcome.
@Suite struct RunnerClassifierTests {
    static func payload(_ code: Int) -> ReplyVerdict {
        .trusted(SignedPayload(code: code, message: "m\(code)", timestamp: 1, keyName: "global"))
    }
    static let ok = TransportResult.response(status: 200, retryAfter: nil, body: [1])

    struct Row: CustomTestStringConvertible, Sendable {
        var name: String
        var result: TransportResult
        var verdict: ReplyVerdict?
        var maybeDelivered: Bool
        var attempts = 1
        var state: WorkState
        var outcome: AttemptOutcome
        var nowMaybe: Bool
        var counts = true
        var authStop = false
        var testDescription: String { name }
    }

    static let table: [Row] = [
        Row(name: "800 → assigned", result: ok, verdict: payload(800), maybeDelivered: false,
            state: .assigned, outcome: .assigned, nowMaybe: false),
        Row(name: "800 after a maybe-delivered attempt → assigned", result: ok, verdict: payload(800), maybeDelivered: true,
            state: .assigned, outcome: .assigned, nowMaybe: true),
        Row(name: "801, nothing sent before → rejected", result: ok, verdict: payload(801), maybeDelivered: false,
            state: .rejected, outcome: .rejected, nowMaybe: false),
        Row(name: "801 after a maybe-delivered attempt → uncertain", result: ok, verdict: payload(801), maybeDelivered: true,
            state: .uncertain, outcome: .uncertain, nowMaybe: true),
        Row(name: "undocumented code → failed, maybe delivered (the server answered)", result: ok, verdict: payload(555),
            maybeDelivered: false, state: .failed, outcome: .failed, nowMaybe: true),
        Row(name: "unverified 200 → retry, maybe delivered", result: ok, verdict: .untrusted(.badSignature, "x"), maybeDelivered: false,
            state: .retry, outcome: .retry, nowMaybe: true),
        Row(name: "stale 200 → retry, maybe delivered", result: ok, verdict: .untrusted(.stale, "x"), maybeDelivered: false,
            state: .retry, outcome: .retry, nowMaybe: true),
        Row(name: "connection refused → back to pending, not counted, not delivered", result: .notSent("refused"), verdict: nil,
            maybeDelivered: false, state: .pending, outcome: .notSent, nowMaybe: false, counts: false),
        Row(name: "certificate refused → pending, not counted: a configuration stop", result: .tlsFailure("untrusted"),
            verdict: nil, maybeDelivered: false, state: .pending, outcome: .configStop, nowMaybe: false, counts: false),
        Row(name: "timeout after sending → retry, maybe delivered", result: .maybeSent("timed out"), verdict: nil, maybeDelivered: false,
            state: .retry, outcome: .retry, nowMaybe: true),
        Row(name: "503 → retry, maybe delivered", result: .response(status: 503, retryAfter: nil, body: []), verdict: nil,
            maybeDelivered: false, state: .retry, outcome: .retry, nowMaybe: true),
        Row(name: "429 → back to pending, not counted, not delivered", result: .response(status: 429, retryAfter: "1", body: []),
            verdict: nil, maybeDelivered: false, attempts: 5, state: .pending, outcome: .rateLimited, nowMaybe: false,
            counts: false),
        Row(name: "401 unsigned → the row's retry (the runner's RefusalGate may make it a stop)",
            result: .response(status: 401, retryAfter: nil, body: [1]), verdict: .untrusted(.unsigned, ""),
            maybeDelivered: false, state: .retry, outcome: .retry, nowMaybe: false),
        Row(name: "403 HTML page on the last attempt → failed", result: .response(status: 403, retryAfter: nil, body: [60]),
            verdict: .untrusted(.envelopeNotJSON, ""), maybeDelivered: false, attempts: 3, state: .failed, outcome: .failed,
            nowMaybe: false),
        Row(name: "401 code 100 → auth stop", result: .response(status: 401, retryAfter: nil, body: [1]), verdict: payload(100),
            maybeDelivered: false, state: .pending, outcome: .authStop, nowMaybe: false, counts: false, authStop: true),
        Row(name: "403 code 150 → auth stop", result: .response(status: 403, retryAfter: nil, body: [1]), verdict: payload(150),
            maybeDelivered: true, state: .pending, outcome: .authStop, nowMaybe: true, counts: false, authStop: true),
        Row(name: "200 with verified code 102 → auth stop", result: ok, verdict: payload(102), maybeDelivered: false,
            state: .pending, outcome: .authStop, nowMaybe: false, counts: false, authStop: true),
        Row(name: "other 4xx → failed", result: .response(status: 404, retryAfter: nil, body: []), verdict: nil,
            maybeDelivered: false, state: .failed, outcome: .failed, nowMaybe: false),
        Row(name: "verified payload under a 4xx → failed, maybe delivered", result: .response(status: 400, retryAfter: nil, body: [1]),
            verdict: payload(800), maybeDelivered: false, state: .failed, outcome: .failed, nowMaybe: true),
        Row(name: "verified payload under a 403, not an auth code → failed, maybe delivered",
            result: .response(status: 403, retryAfter: nil, body: [1]), verdict: payload(801), maybeDelivered: false,
            state: .failed, outcome: .failed, nowMaybe: true),
        Row(name: "verified payload under a redirect → failed, maybe delivered", result: .response(status: 302, retryAfter: nil, body: [1]),
            verdict: payload(800), maybeDelivered: false, state: .failed, outcome: .failed, nowMaybe: true),
        Row(name: "redirect → failed", result: .response(status: 302, retryAfter: nil, body: []), verdict: nil,
            maybeDelivered: false, state: .failed, outcome: .failed, nowMaybe: false),
        Row(name: "5xx on the last attempt → failed", result: .response(status: 500, retryAfter: nil, body: []), verdict: nil,
            maybeDelivered: false, attempts: 3, state: .failed, outcome: .failed, nowMaybe: true),
        Row(name: "refused on the last attempt → still pending: it never left", result: .notSent("refused"), verdict: nil,
            maybeDelivered: true, attempts: 3, state: .pending, outcome: .notSent, nowMaybe: true, counts: false),
    ]

    @Test(arguments: table)
    func classifies(_ row: Row) {
        let c = Classifier.classify(row.result, verdict: row.verdict, maybeDelivered: row.maybeDelivered,
                                    attempts: row.attempts, maxAttempts: 3)
        #expect(c.state == row.state)
        #expect(c.outcome == row.outcome)
        #expect(c.maybeDelivered == row.nowMaybe)
        #expect(c.countsAttempt == row.counts)
        #expect((c.authStop != nil) == row.authStop)
        if case .trusted(let p)? = row.verdict { #expect(c.code == p.code) } else { #expect(c.code == nil) }
    }

    @Test("a 404 or 405 names --server: the protocol never answers a key's problem that way")
    func notFoundPointsAtTheServerURL() {
        for status in [404, 405] {
            let c = Classifier.classify(.response(status: status, retryAfter: nil, body: []), verdict: nil,
                                        maybeDelivered: false, attempts: 1, maxAttempts: 3)
            #expect(c.error == "HTTP \(status): no assign-license-key endpoint at this URL, check --server")
        }
        let other = Classifier.classify(.response(status: 422, retryAfter: nil, body: []), verdict: nil,
                                        maybeDelivered: false, attempts: 1, maxAttempts: 3)
        #expect(other.error == "HTTP 422")
    }

    @Test func authStopNamesTheCode() {
        let c = Classifier.classify(.response(status: 401, retryAfter: nil, body: [1]), verdict: Self.payload(101),
                                    maybeDelivered: false, attempts: 1, maxAttempts: 5)
        #expect(c.authStop?.contains("code 101") == true)
        #expect(c.authStop?.contains("HTTP 401") == true)
    }
}

@Suite struct RunnerPartsTests {
    @Test func endpointAppendsThePathOnce() throws {
        for base in ["https://l.example.com", "https://l.example.com/", "https://l.example.com/api/v1",
                     "https://l.example.com/api/v1/"] {
            #expect(try ServerEndpoint(base: base, allowInsecureHTTP: false).url.absoluteString
                    == "https://l.example.com/api/v1/assign-license-key")
        }
        #expect(try ServerEndpoint(base: "https://h/km/api/v1", allowInsecureHTTP: false).url.absoluteString
                == "https://h/km/api/v1/assign-license-key")
    }

    @Test func plainHTTPOnlyToLoopbackOrWhenAllowed() throws {
        for ok in ["http://127.0.0.1:8080", "http://127.3.2.1", "http://localhost:1", "http://[::1]:9"] {
            #expect(throws: Never.self) { try ServerEndpoint(base: ok, allowInsecureHTTP: false) }
        }
        for refused in ["http://licenses.example.com", "http://10.0.0.1", "http://127.0.0.1.evil.com", "ftp://x"] {
            let error = #expect(throws: KeyAssignError.self) { try ServerEndpoint(base: refused, allowInsecureHTTP: false) }
            #expect(error?.status == .config)
        }
        #expect(throws: Never.self) { try ServerEndpoint(base: "http://licenses.example.com", allowInsecureHTTP: true) }
        #expect(throws: KeyAssignError.self) { try ServerEndpoint(base: "https://u:p@h", allowInsecureHTTP: false) }
    }

    @Test func formBodyEncodesEverythingButUnreserved() {
        let builder = RequestBodyBuilder(encoding: .form, apiKey: "k+&=")
        let body = String(decoding: builder.body(licenseKey: "A B", ownerName: "Zoë & Co=1+2", email: nil), as: UTF8.self)
        #expect(body == "api_key=k%2B%26%3D&license_key=A%20B&owner_name=Zo%C3%AB%20%26%20Co%3D1%2B2")
        let empty = String(decoding: builder.body(licenseKey: "x", ownerName: "", email: ""), as: UTF8.self)
        #expect(empty == "api_key=k%2B%26%3D&license_key=x")
    }

    @Test func jsonBodyIsValidJSON() throws {
        let builder = RequestBodyBuilder(encoding: .json, apiKey: "k\"")
        let bytes = builder.body(licenseKey: "a\\b", ownerName: "Zoë \"Q\"\n", email: "e@x")
        let object = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: String]
        #expect(object == ["api_key": "k\"", "license_key": "a\\b", "owner_name": "Zoë \"Q\"\n", "email": "e@x"])
    }

    @Test func retryAfterFromHeaderDateOrBody() {
        #expect(RetryAfter.seconds(header: "7", body: [], now: 0) == 7)
        let date = RetryAfter.seconds(header: "Sun, 06 Nov 1994 08:49:37 GMT", body: [], now: 784_111_770)
        #expect(date == 7)
        #expect(RetryAfter.seconds(header: nil, body: Array("{\"retry_after\":3}".utf8), now: 0) == 3)
        #expect(RetryAfter.seconds(header: "soon", body: Array("junk".utf8), now: 0) == nil)
    }

    @Test func tokenBucketBurstsThenKeepsTheRate() throws {
        // Burst 6 sends at most 5 back-to-back: one token stays in reserve for the server.
        let bucket = TokenBucket(rate: 50, burst: 6, now: 100)
        #expect(bucket.available(now: 100) == 5)
        bucket.take(5, now: 100)
        #expect(bucket.available(now: 100) == 0)
        #expect(abs(bucket.nextAvailable(now: 100) - 100.02) < 1e-9)
        #expect(bucket.available(now: 100.1) == 5)
        // Never more than burst − 1, however long the wait.
        #expect(bucket.available(now: 200) == 5)
        // Over one simulated second at full demand: (burst − 1) + rate, no more.
        let b = TokenBucket(rate: 50, burst: 6, now: 0)
        var sent = 0
        var t = 0.0
        while t <= 1.0 {
            let n = b.available(now: t)
            // Also keeps a broken bucket's huge count from overflowing the sum and ending the test process.
            try #require(n >= 0 && n <= 5, "\(n) available at t = \(t)")
            b.take(n, now: t)
            sent += n
            t += 0.001
        }
        #expect(sent >= 54 && sent <= 55)
    }

    /// Replays the client's sends into a server-side limiter with the SAME burst, with every
    /// arrival delayed by a jitter of up to (but under) 1/R: none is refused. Without the
    /// reserve (the client spending all `burst` tokens) the same arrivals are refused.
    @Test func tokenBucketReserveAbsorbsArrivalJitterAtTheServer() {
        for burst in [2, 3, 10] {
            let rate = 50.0
            let client = TokenBucket(rate: rate, burst: burst, now: 0)
            var server = SandboxRateLimiter(.init(rate: rate, burst: burst), now: 0)
            var refused = 0
            var sent = 0
            var t = 0.0
            var previousArrival = 0.0
            while sent < 200 {
                let n = client.available(now: t)
                client.take(n, now: t)
                for _ in 0..<n {
                    // Alternate late and early arrivals: the worst case squeezes two
                    // requests sent 1/R apart to arrive 0.1/R apart.
                    let jitter = sent % 2 == 0 ? 0.9 / rate : 0
                    let arrival = max(previousArrival, t + jitter)
                    previousArrival = arrival
                    if server.take(now: arrival) != nil { refused += 1 }
                    sent += 1
                }
                t += 0.0005
            }
            #expect(refused == 0, "burst \(burst): \(refused) refused")
            // The long-run rate is unchanged: 200 sends take (200 − (burst − 1)) / rate seconds.
            #expect(abs(t - Double(200 - (burst - 1)) / rate) < 0.002, "burst \(burst): took \(t) s")
        }
        // A burst of 1 cannot keep a reserve: the client may send a full token's worth.
        #expect(TokenBucket(rate: 50, burst: 1, now: 0).available(now: 0) == 1)
    }

    @Test func aPauseStopsEveryoneAndBacksOffWithoutAHint() {
        let bucket = TokenBucket(rate: 0, burst: 1, now: 0)
        #expect(bucket.available(now: 0) == Int.max)
        #expect(bucket.pause(seconds: 2, now: 10, sentAt: 9.9) == 12)
        #expect(bucket.available(now: 11) == 0)
        #expect(bucket.nextAvailable(now: 11) == 12)
        #expect(bucket.available(now: 12) == Int.max)
        // No Retry-After: 1, 2, 4 s for waves of 429s in a row; a reply that is not a 429 resets the streak.
        bucket.noteNotRateLimited(sentAt: 19)
        #expect(bucket.pause(seconds: nil, now: 20, sentAt: 19.9) == 21)
        #expect(bucket.pause(seconds: nil, now: 21, sentAt: 20.95) == 23)
        #expect(bucket.pause(seconds: nil, now: 23, sentAt: 22.9) == 27)
        bucket.noteNotRateLimited(sentAt: 29.9)
        #expect(bucket.pause(seconds: nil, now: 30, sentAt: 29.95) == 31)
    }

    @Test func backoffIsFullJitterUnderTheCap() {
        let backoff = Backoff(base: 1, cap: 60)
        for attempt in 1...12 {
            let ceiling = min(60, pow(2, Double(attempt - 1)))
            for _ in 0..<50 {
                let d = backoff.delay(afterAttempt: attempt)
                #expect(d >= 0 && d <= ceiling)
            }
        }
    }
}

@Suite struct RunnerQueueTests {
    /// The claim must come from the `work_due` index: a table scan per claim makes a run
    /// quadratic in the queue's size.
    /// The very statements `WorkQueue` runs on due rows: both branches of the claim, the
    /// next-due query, the rescue and the counts read `work_due`, and none scans `work`.
    @Test func claimsUseTheDueIndex() throws {
        let dir = try TemporaryDirectory()
        let db = try Database(path: dir.path + "/q.sqlite")
        func plan(_ sql: String) throws -> [String] {
            let statement = try db.prepare("EXPLAIN QUERY PLAN " + sql)
            var details: [String] = []
            while try statement.step() { details.append(statement.string(3) ?? "") }
            return details
        }
        let claim = try plan(WorkQueue.claimSQL)
        #expect(claim.filter { $0.contains("INDEX work_due") }.count >= 2, "\(claim)")
        #expect(!claim.contains { $0.hasPrefix("SCAN work") }, "\(claim)")
        for sql in [WorkQueue.nextDueSQL, WorkQueue.inFlightSQL, WorkQueue.rescueSQL, WorkQueue.toSendSQL,
                    WorkQueue.queuedByStateSQL, "SELECT id FROM work WHERE " + WorkQueue.rescuedRetries] {
            let steps = try plan(sql)
            #expect(steps.contains { $0.contains("work_due") }, "\(sql): \(steps)")
            // A scan of the partial index reads only rows with work; a scan of `work` reads them all.
            #expect(!steps.contains { $0.hasPrefix("SCAN work") && !$0.contains("INDEX work_due") }, "\(sql): \(steps)")
        }
    }
}
