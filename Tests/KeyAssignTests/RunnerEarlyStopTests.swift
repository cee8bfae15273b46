import Foundation
import Logging
import Testing

@testable import KeyAssign

/// Issue 20, items 3 and 4, without sockets: `EarlyStop` fed with classified outcomes, and
/// `FailureKind`, the rule that decides which failed rows a rerun sends again (issue 18, item 6).
@Suite struct RunnerEarlyStopTests {
    static let html = TransportResult.response(status: 200, retryAfter: nil, body: Array("<!doctype html><p>hi".utf8))

    @Test func aHandfulOfBadSignaturesWithNothingVerifiedStops() {
        var early = EarlyStop()
        for _ in 1..<EarlyStop.threshold {
            #expect(early.observe(.signature(.badSignature)) == .proceed)
        }
        // A 5xx or a timeout in between says nothing about the key, and does not break the row.
        #expect(early.observe(.neutral) == .proceed)
        #expect(early.observe(.signature(.badSignature)) == .stop(.signature, first: true))
        #expect(early.observe(.signature(.badSignature)) == .stop(.signature, first: false))
        let key = SigningKey(name: "global", file: "/etc/k.pem", sha256: "ab12")
        let message = early.message(
            .signature, keys: [key], maxClockSkew: 300, url: "https://h/api/v1/assign-license-key")
        #expect(message.contains("--public-key") && message.contains("sha256:ab12") && message.contains("/etc/k.pem"))
        #expect(message.contains("uncertain"))
    }

    @Test func oneVerifiedReplyMeansTheKeyIsRight() {
        var early = EarlyStop()
        #expect(early.observe(.verified) == .proceed)
        for _ in 0..<20 { #expect(early.observe(.signature(.badSignature)) == .proceed) }
        for _ in 0..<20 { #expect(early.observe(.wrongServer("HTTP 404")) == .proceed) }
    }

    @Test func anotherFailureStartsTheCountAgain() {
        var early = EarlyStop()
        for _ in 1..<EarlyStop.threshold { _ = early.observe(.signature(.badSignature)) }
        #expect(early.observe(.stale(offset: -900)) == .proceed)
        #expect(early.streak == 1)
    }

    @Test func staleRepliesGiveTheMeasuredOffset() {
        var early = EarlyStop()
        for offset in [-905.0, -900, -899, -901, -900] { _ = early.observe(.stale(offset: offset)) }
        #expect(early.stopped == .freshness)
        #expect(early.measuredOffset == -900)
        let message = early.message(.freshness, keys: [], maxClockSkew: 300, url: "")
        #expect(message.contains("900 s behind") && message.contains("check NTP, or --max-clock-skew".capitalizedFirst))
        // From the verifier's own words.
        let now = 1_800_000_000.0
        let verdict = ReplyVerdict.untrusted(
            .stale, "the reply was signed at 1800000900, -900 s before now; more than the allowed 300.0 s either way")
        #expect(
            EarlyStop.observation(.response(status: 200, retryAfter: nil, body: [1]), verdict: verdict, now: now)
                == .stale(offset: -900))
    }

    /// A clock the test holds: the run reads no other.
    struct FixedClock: RunClock {
        var at: Double
        func monotonic() -> Double { 0 }
        func wall() -> Double { at }
    }

    @Test("a stale listing at a run's start is told against the run's clock, not the process's")
    func aStaleListingIsMeasuredOnTheRunsClock() throws {
        let dir = try TemporaryDirectory()
        let options = RunOptions(
            databasePath: dir.path + "/work.db",
            endpoint: try ServerEndpoint(base: "http://127.0.0.1:1", allowInsecureHTTP: true), apiKey: "k")
        let db = try Database(path: options.databasePath)
        // Signed 900 s after the run's clock reads: the local clock is 900 s behind.
        let signedAt = 1_800_000_900.0
        let reconciliation = RunReconciliation(
            options: options, keyRing: try TestKeys.ring(), logger: Logger(label: "test"),
            clock: FixedClock(at: signedAt - 900)
        ) {
            .failure(
                .untrusted(
                    .stale, "signed at \(Int(signedAt)), -900 s before now; more than the allowed 300.0 s either way"))
        }
        let error = try #require(throws: KeyAssignError.self) {
            try reconciliation.afterRescue(db, runID: 1, recovered: 1, renewed: .init())
        }
        #expect(error.status == .config)
        #expect(error.message.contains("the local clock is 900 s behind"), "\(error.message)")
    }

    @Test func wrongServerRepliesAreHeldThenStop() {
        var early = EarlyStop()
        let now = 0.0
        #expect(
            EarlyStop.observation(.response(status: 404, retryAfter: nil, body: []), verdict: nil, now: now)
                == .wrongServer("HTTP 404"))
        #expect(
            EarlyStop.observation(
                .response(status: 405, retryAfter: nil, body: Array("{}".utf8)),
                verdict: .untrusted(.envelopeMissingFields, ""), now: now) == .wrongServer("HTTP 405"))
        let page = EarlyStop.observation(Self.html, verdict: .untrusted(.envelopeNotJSON, ""), now: now)
        #expect(page == .wrongServer("an HTML page instead of JSON (HTTP 200)"))
        // A 5xx debug page or a timeout is not a wrong URL.
        #expect(
            EarlyStop.observation(
                .response(status: 503, retryAfter: nil, body: Array("<html>".utf8)), verdict: nil, now: now) == .neutral
        )
        #expect(EarlyStop.observation(.maybeSent("timeout"), verdict: nil, now: now) == .neutral)
        for _ in 1..<EarlyStop.threshold { #expect(early.observe(page) == .hold) }
        #expect(early.observe(page) == .stop(.wrongServer, first: true))
        let message = early.message(
            .wrongServer, keys: [], maxClockSkew: nil, url: "https://h/x/api/v1/assign-license-key")
        #expect(
            message.contains("https://h/x/api/v1/assign-license-key") && message.contains("--server")
                && message.contains("pending"))
    }

    @Test func failuresThatPassComeBackAndRefusalsOfTheRequestStay() {
        #expect(FailureKind(httpStatus: nil, code: nil) == .passing)  // timeout, reset
        #expect(FailureKind(httpStatus: 503, code: nil) == .passing)
        #expect(FailureKind(httpStatus: 200, code: nil) == .passing)  // reply that did not verify
        #expect(FailureKind(httpStatus: 403, code: nil) == .passing)  // a firewall's unsigned refusal
        #expect(FailureKind(httpStatus: 408, code: nil) == .passing)
        #expect(FailureKind(httpStatus: 429, code: nil) == .passing)
        #expect(FailureKind(httpStatus: 422, code: nil) == .final)
        #expect(FailureKind(httpStatus: 404, code: nil) == .final)
        #expect(FailureKind(httpStatus: 200, code: 899) == .passing)  // undocumented: the listing settles it
        #expect(FailureKind(httpStatus: 400, code: 800) == .final)
    }

    @Test func serverAcceptsTheBaseTheAPIPathOrTheEndpoint() throws {
        for base in [
            "https://h.example/km", "https://h.example/km/", "https://h.example/km/api/v1",
            "https://h.example/km/api/v1/", "https://h.example/km/api/v1/assign-license-key",
            "https://h.example/km/API/V1/Assign-License-Key/", "https://h.example/km/api/v1/get-license-keys",
        ] {
            let endpoint = try ServerEndpoint(base: base, allowInsecureHTTP: false)
            #expect(endpoint.url.absoluteString == "https://h.example/km/api/v1/assign-license-key", "\(base)")
            #expect(endpoint.listingURL.absoluteString == "https://h.example/km/api/v1/get-license-keys", "\(base)")
        }
    }
}

extension String {
    fileprivate var capitalizedFirst: String { prefix(1).uppercased() + dropFirst() }
}
