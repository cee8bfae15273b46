import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Issue 21: the sandbox's quotas behave like Laravel's throttle (fixed windows that open at
/// the first request after the last one expired) and say so in X-RateLimit-* headers.
@Suite struct SandboxQuotasTests {
    static func header(_ decision: SandboxQuotas.Decision, _ name: String) -> String? {
        decision.headers.first { $0.0 == name }?.1
    }

    @Test("a window opens at the first request after the last one expired, not on a grid, and a refusal is not counted")
    func windowsOpenAtTheFirstRequest() {
        var quotas = SandboxQuotas([RateLimit(count: 2, window: 10)])
        let start = 1_800_000_000.0
        let first = quotas.take(now: start + 3)
        #expect(first.retryAfter == nil && Self.header(first, "X-RateLimit-Remaining") == "1")
        #expect(Self.header(first, "X-RateLimit-Limit") == "2")
        #expect(Self.header(first, "X-RateLimit-Reset") == String(Int64(start) + 13))
        #expect(quotas.take(now: start + 4).retryAfter == nil)
        let refused = quotas.take(now: start + 5.5)
        #expect(refused.retryAfter == 8 && Self.header(refused, "X-RateLimit-Remaining") == "0")
        // Refusals do not count: the window still ends at 13.
        #expect(quotas.take(now: start + 12.9).retryAfter == 1)
        // Nothing from 13 to 20.5: the next window opens at 20.5 (not at 13, nor on a grid of 10 s),
        let reopened = quotas.take(now: start + 20.5)
        #expect(reopened.retryAfter == nil && Self.header(reopened, "X-RateLimit-Reset") == String(Int64(start) + 31))
        #expect(quotas.take(now: start + 21).retryAfter == nil)
        // so at 29 it is still full, and at 30.5 open again.
        #expect(quotas.take(now: start + 29).retryAfter == 2)
        #expect(quotas.take(now: start + 30.5).retryAfter == nil)
    }

    @Test("several quotas: a request counts in all or none, and the headers name the tightest")
    func severalQuotas() {
        var quotas = SandboxQuotas([RateLimit(count: 3, window: 1), RateLimit(count: 4, window: 60)])
        let start = 1_800_000_000.0
        for offset in [0.0, 0.1, 0.2] { #expect(quotas.take(now: start + offset).retryAfter == nil) }
        // The 1 s window is full: refused for 1 s, and not counted in the minute.
        #expect(quotas.take(now: start + 0.5).retryAfter == 1)
        let fourth = quotas.take(now: start + 1.5)
        #expect(fourth.retryAfter == nil)
        #expect(Self.header(fourth, "X-RateLimit-Limit") == "4" && Self.header(fourth, "X-RateLimit-Remaining") == "0")
        #expect(quotas.take(now: start + 3).retryAfter == 57)
    }

    @Test("the server sends the headers with every reply, and 429 + Retry-After when the quota is spent")
    func theServerSendsTheHeaders() async throws {
        // A day: however long a loaded machine keeps this test from running between its requests
        // (an async test waits for a free thread; minutes were seen beside a CPU hog), the window
        // must not expire in between.
        let sandbox = try RunningSandbox(keys: ["K-1", "K-2", "K-3"]) {
            $0.quotas = [RateLimit(count: 2, window: 86_400)]
        }
        func post(_ key: String) async throws -> HTTPResult {
            try await SandboxHTTP.post(
                sandbox.assignURL, form: [("api_key", sandbox.server.apiKey), ("license_key", key)])
        }
        func header(_ result: HTTPResult, _ name: String) -> String? {
            result.headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }
        // The window opens when the first request arrives: between these two readings.
        let before = Timestamps.now()
        let first = try await post("K-1")
        let after = Timestamps.now()
        #expect(
            first.status == 200 && header(first, "X-RateLimit-Remaining") == "1"
                && header(first, "X-RateLimit-Limit") == "2")
        let reset = try #require(header(first, "X-RateLimit-Reset").flatMap(Double.init))
        #expect(reset >= before + 86_400 && reset <= after + 86_401, "reset \(reset), sent \(before)…\(after)")
        _ = try await post("K-2")
        let refusedAt = Timestamps.now()
        let refused = try await post("K-3")
        #expect(refused.status == 429 && header(refused, "X-RateLimit-Remaining") == "0")
        #expect(header(refused, "X-RateLimit-Reset").flatMap(Double.init) == reset)
        // Whole seconds until the window that opened with the first request expires.
        let retryAfter = try #require(header(refused, "Retry-After").flatMap(Int.init))
        #expect(retryAfter >= 1 && Double(retryAfter) <= reset - refusedAt + 1, "Retry-After \(retryAfter)")
        #expect(sandbox.server.ledger().rateLimited == 1)
        #expect(sandbox.server.ledger().keys["K-3"]?.assigned != true)
    }

    @Test("keyassign sandbox --quota: bad values are refused with the flag named (exit 64)")
    func badQuotaFlags() throws {
        let dir = try TemporaryDirectory()
        for bad in ["30", "0/hour", "30/fortnight"] {
            let result = try CLI.run(["sandbox", "--state-dir", dir.path + "/s", "--quota", bad])
            #expect(result.status == 64, "\(bad): \(result.stderr)")
            #expect(result.stderr.contains("--quota \(bad)"), "\(bad): \(result.stderr)")
        }
    }
}
