import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

@Suite struct RunnerPartsTests {
    @Test func endpointAppendsThePathOnce() throws {
        for base in [
            "https://l.example.com", "https://l.example.com/", "https://l.example.com/api/v1",
            "https://l.example.com/api/v1/",
        ] {
            #expect(
                try ServerEndpoint(base: base, allowInsecureHTTP: false).url.absoluteString
                    == "https://l.example.com/api/v1/assign-license-key")
        }
        #expect(
            try ServerEndpoint(base: "https://h/km/api/v1", allowInsecureHTTP: false).url.absoluteString
                == "https://h/km/api/v1/assign-license-key")
    }

    @Test func plainHTTPOnlyToLoopbackOrWhenAllowed() throws {
        for ok in ["http://127.0.0.1:8080", "http://127.3.2.1", "http://localhost:1", "http://[::1]:9"] {
            #expect(throws: Never.self) { try ServerEndpoint(base: ok, allowInsecureHTTP: false) }
        }
        for refused in ["http://licenses.example.com", "http://10.0.0.1", "http://127.0.0.1.evil.com", "ftp://x"] {
            let error = #expect(throws: KeyAssignError.self) {
                try ServerEndpoint(base: refused, allowInsecureHTTP: false)
            }
            #expect(error?.status == .config)
        }
        #expect(throws: Never.self) { try ServerEndpoint(base: "http://licenses.example.com", allowInsecureHTTP: true) }
        #expect(throws: KeyAssignError.self) { try ServerEndpoint(base: "https://u:p@h", allowInsecureHTTP: false) }
    }

    @Test func formBodyEncodesEverythingButUnreserved() {
        let builder = RequestBodyBuilder(encoding: .form, apiKey: "k+&=")
        let body = String(
            decoding: builder.body(licenseKey: "A B", ownerName: "Zoë & Co=1+2", email: nil), as: UTF8.self)
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
        // What the server asked for, however late a later look at the pause comes.
        #expect(bucket.askedPause == 2)
        #expect(bucket.available(now: 11) == 0)
        #expect(bucket.nextAvailable(now: 11) == 12)
        #expect(bucket.available(now: 12) == Int.max)
        // No Retry-After: 1, 2, 4 s for waves of 429s in a row; a reply that is not a 429 resets the streak.
        bucket.noteNotRateLimited(sentAt: 19)
        #expect(bucket.pause(seconds: nil, now: 20, sentAt: 19.9) == 21)
        #expect(bucket.pause(seconds: nil, now: 21, sentAt: 20.95) == 23)
        #expect(bucket.askedPause == 2)
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
