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
        Row(
            name: "800 → assigned", result: ok, verdict: payload(800), maybeDelivered: false,
            state: .assigned, outcome: .assigned, nowMaybe: false),
        Row(
            name: "800 after a maybe-delivered attempt → assigned", result: ok, verdict: payload(800),
            maybeDelivered: true,
            state: .assigned, outcome: .assigned, nowMaybe: true),
        Row(
            name: "801, nothing sent before → rejected", result: ok, verdict: payload(801), maybeDelivered: false,
            state: .rejected, outcome: .rejected, nowMaybe: false),
        Row(
            name: "801 after a maybe-delivered attempt → uncertain", result: ok, verdict: payload(801),
            maybeDelivered: true,
            state: .uncertain, outcome: .uncertain, nowMaybe: true),
        Row(
            name: "undocumented code → failed, maybe delivered (the server answered)", result: ok,
            verdict: payload(555),
            maybeDelivered: false, state: .failed, outcome: .failed, nowMaybe: true),
        Row(
            name: "unverified 200 → retry, maybe delivered", result: ok, verdict: .untrusted(.badSignature, "x"),
            maybeDelivered: false,
            state: .retry, outcome: .retry, nowMaybe: true),
        Row(
            name: "stale 200 → retry, maybe delivered", result: ok, verdict: .untrusted(.stale, "x"),
            maybeDelivered: false,
            state: .retry, outcome: .retry, nowMaybe: true),
        Row(
            name: "connection refused → back to pending, not counted, not delivered", result: .notSent("refused"),
            verdict: nil,
            maybeDelivered: false, state: .pending, outcome: .notSent, nowMaybe: false, counts: false),
        Row(
            name: "certificate refused → pending, not counted: a configuration stop", result: .tlsFailure("untrusted"),
            verdict: nil, maybeDelivered: false, state: .pending, outcome: .configStop, nowMaybe: false, counts: false),
        Row(
            name: "timeout after sending → retry, maybe delivered", result: .maybeSent("timed out"), verdict: nil,
            maybeDelivered: false,
            state: .retry, outcome: .retry, nowMaybe: true),
        Row(
            name: "503 → retry, maybe delivered", result: .response(status: 503, retryAfter: nil, body: []),
            verdict: nil,
            maybeDelivered: false, state: .retry, outcome: .retry, nowMaybe: true),
        Row(
            name: "429 → back to pending, not counted, not delivered",
            result: .response(status: 429, retryAfter: "1", body: []),
            verdict: nil, maybeDelivered: false, attempts: 5, state: .pending, outcome: .rateLimited, nowMaybe: false,
            counts: false),
        Row(
            name: "401 unsigned → the row's retry (the runner's RefusalGate may make it a stop)",
            result: .response(status: 401, retryAfter: nil, body: [1]), verdict: .untrusted(.unsigned, ""),
            maybeDelivered: false, state: .retry, outcome: .retry, nowMaybe: false),
        Row(
            name: "403 HTML page on the last attempt → failed",
            result: .response(status: 403, retryAfter: nil, body: [60]),
            verdict: .untrusted(.envelopeNotJSON, ""), maybeDelivered: false, attempts: 3, state: .failed,
            outcome: .failed,
            nowMaybe: false),
        Row(
            name: "401 code 100 → auth stop", result: .response(status: 401, retryAfter: nil, body: [1]),
            verdict: payload(100),
            maybeDelivered: false, state: .pending, outcome: .authStop, nowMaybe: false, counts: false, authStop: true),
        Row(
            name: "403 code 150 → auth stop", result: .response(status: 403, retryAfter: nil, body: [1]),
            verdict: payload(150),
            maybeDelivered: true, state: .pending, outcome: .authStop, nowMaybe: true, counts: false, authStop: true),
        Row(
            name: "200 with verified code 102 → auth stop", result: ok, verdict: payload(102), maybeDelivered: false,
            state: .pending, outcome: .authStop, nowMaybe: false, counts: false, authStop: true),
        Row(
            name: "other 4xx → failed", result: .response(status: 404, retryAfter: nil, body: []), verdict: nil,
            maybeDelivered: false, state: .failed, outcome: .failed, nowMaybe: false),
        Row(
            name: "verified payload under a 4xx → failed, maybe delivered",
            result: .response(status: 400, retryAfter: nil, body: [1]),
            verdict: payload(800), maybeDelivered: false, state: .failed, outcome: .failed, nowMaybe: true),
        Row(
            name: "verified payload under a 403, not an auth code → failed, maybe delivered",
            result: .response(status: 403, retryAfter: nil, body: [1]), verdict: payload(801), maybeDelivered: false,
            state: .failed, outcome: .failed, nowMaybe: true),
        Row(
            name: "verified payload under a redirect → failed, maybe delivered",
            result: .response(status: 302, retryAfter: nil, body: [1]),
            verdict: payload(800), maybeDelivered: false, state: .failed, outcome: .failed, nowMaybe: true),
        Row(
            name: "unsigned 404 after a maybe-delivered attempt → uncertain, not failed",
            result: .response(status: 404, retryAfter: nil, body: []), verdict: nil, maybeDelivered: true,
            state: .uncertain, outcome: .uncertain, nowMaybe: true),
        Row(
            name: "redirect → failed", result: .response(status: 302, retryAfter: nil, body: []), verdict: nil,
            maybeDelivered: false, state: .failed, outcome: .failed, nowMaybe: false),
        // Issue 18: maybe delivered is never `failed` on its own. Attempts that run out after
        // one may have reached the server end `uncertain`, for the key listing to settle.
        Row(
            name: "5xx on the last attempt → uncertain (maybe delivered)",
            result: .response(status: 500, retryAfter: nil, body: []),
            verdict: nil, maybeDelivered: false, attempts: 3, state: .uncertain, outcome: .uncertain, nowMaybe: true),
        Row(
            name: "timeout after sending on the last attempt → uncertain", result: .maybeSent("timed out"),
            verdict: nil,
            maybeDelivered: false, attempts: 3, state: .uncertain, outcome: .uncertain, nowMaybe: true),
        Row(
            name: "reply failing verification on the last attempt → uncertain", result: ok,
            verdict: .untrusted(.badSignature, ""), maybeDelivered: false, attempts: 3, state: .uncertain,
            outcome: .uncertain,
            nowMaybe: true),
        Row(
            name: "unsigned 403 on the last attempt after an earlier timeout → uncertain",
            result: .response(status: 403, retryAfter: nil, body: [60]), verdict: .untrusted(.envelopeNotJSON, ""),
            maybeDelivered: true, attempts: 3, state: .uncertain, outcome: .uncertain, nowMaybe: true),
        Row(
            name: "408 → retry, not delivered (the server did not read the request)",
            result: .response(status: 408, retryAfter: nil, body: []), verdict: nil, maybeDelivered: false,
            state: .retry, outcome: .retry, nowMaybe: false),
        Row(
            name: "refused on the last attempt → still pending: it never left", result: .notSent("refused"),
            verdict: nil,
            maybeDelivered: true, attempts: 3, state: .pending, outcome: .notSent, nowMaybe: true, counts: false),
    ]

    @Test(arguments: table)
    func classifies(_ row: Row) {
        let c = Classifier.classify(
            row.result, verdict: row.verdict, maybeDelivered: row.maybeDelivered,
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
            let c = Classifier.classify(
                .response(status: status, retryAfter: nil, body: []), verdict: nil,
                maybeDelivered: false, attempts: 1, maxAttempts: 3)
            #expect(c.error == "HTTP \(status): no assign-license-key endpoint at this URL, check --server")
        }
        let other = Classifier.classify(
            .response(status: 422, retryAfter: nil, body: []), verdict: nil,
            maybeDelivered: false, attempts: 1, maxAttempts: 3)
        #expect(other.error == "HTTP 422")
    }

    @Test func authStopNamesTheCode() {
        let c = Classifier.classify(
            .response(status: 401, retryAfter: nil, body: [1]), verdict: Self.payload(101),
            maybeDelivered: false, attempts: 1, maxAttempts: 5)
        #expect(c.authStop?.contains("code 101") == true)
        #expect(c.authStop?.contains("HTTP 401") == true)
    }
}
