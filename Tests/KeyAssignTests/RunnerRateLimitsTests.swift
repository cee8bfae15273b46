import Testing

@testable import KeyAssign

/// Issue 21: `RateLimits`, the quotas a run keeps, on a clock the test moves. No test waits
/// for a window: the schedules are random and the time is whatever the test says.
@Suite struct RunnerRateLimitsTests {
    /// Sends as much as the limits allow at random moments, in random batches, and returns
    /// the send times (one entry per request).
    static func greedySchedule(_ limits: [RateLimit], seed: UInt64, steps: Int, meanGap: Double) -> [Double] {
        var random = SeededGenerator(state: seed)
        var rules = RateLimits(limits: limits)
        var now = 1000.0
        var sends: [Double] = []
        for _ in 0..<steps {
            // Sometimes a burst of asks at once, sometimes a long silence.
            now += Bool.random(using: &random) ? 0 : Double.random(in: 0...(2 * meanGap), using: &random)
            let available = rules.available(now: now)
            let batch = available == 0 ? 0 : Int.random(in: 1...min(available, 64), using: &random)
            rules.take(batch, now: now)
            sends += Array(repeating: now, count: batch)
        }
        return sends
    }

    /// The most sends any window [a, a + W) holds, wherever it starts: the server's fixed
    /// windows may open at any moment, and the fullest one starts at a send.
    static func fullestWindow(_ sends: [Double], length: Double) -> Int {
        var fullest = 0
        var end = 0
        for start in sends.indices {
            while end < sends.count && sends[end] < sends[start] + length { end += 1 }
            fullest = max(fullest, end - start)
        }
        return fullest
    }

    @Test("random schedules: never more than N in any window of length W, for every limit at once", arguments: 0..<40)
    func noWindowEverHoldsMoreThanItsLimit(seed: Int) {
        var random = SeededGenerator(state: UInt64(seed) &* 7919)
        let windows: [Double] = [0.5, 1, 2, 10, 60, 3600]
        let limits = (0..<Int.random(in: 1...3, using: &random)).map { _ in
            RateLimit(count: Int.random(in: 1...40, using: &random), window: windows.randomElement(using: &random)!)
        }
        let sends = Self.greedySchedule(
            limits, seed: UInt64(seed), steps: 3000,
            meanGap: limits.map { $0.window / Double($0.count) }.min()! / 2)
        #expect(!sends.isEmpty)
        for limit in limits {
            let fullest = Self.fullestWindow(sends, length: limit.window)
            #expect(fullest <= limit.count, "seed \(seed): \(limit) held \(fullest) in one window; limits \(limits)")
        }
    }

    @Test("greedy sending fills the limit: a long run sends close to N per W, not far below it")
    func theLimitIsUsedNotWasted() {
        let limit = RateLimit(count: 10, window: 60)
        var rules = RateLimits(limits: [limit])
        var now = 0.0
        var sent = 0
        // Ask whenever the rules say something fits, for an hour.
        while now < 3600 {
            let available = rules.available(now: now)
            if available > 0 {
                rules.take(available, now: now)
                sent += available
            }
            now = max(now + 0.001, rules.nextAvailable(now: now).at)
        }
        // 60 windows of 60 s, each a margin of 1 s longer: 59 full windows at least.
        #expect(sent >= 590 && sent <= 600, "sent \(sent)")
    }

    @Test("nextAvailable is exact: nothing fits a moment before it, something fits at it", arguments: 0..<20)
    func nextAvailableIsTheFirstMomentSomethingFits(seed: Int) {
        var random = SeededGenerator(state: UInt64(seed) &+ 17)
        let limits = [
            RateLimit(
                count: Int.random(in: 1...20, using: &random), window: Double(Int.random(in: 1...120, using: &random))),
            RateLimit(count: Int.random(in: 20...200, using: &random), window: 3600),
        ]
        var rules = RateLimits(limits: limits)
        var now = 0.0
        for _ in 0..<500 {
            let available = rules.available(now: now)
            if available > 0 {
                #expect(rules.nextAvailable(now: now).at == now)
                rules.take(Int.random(in: 1...available, using: &random), now: now)
            } else {
                let (at, blocker) = rules.nextAvailable(now: now)
                #expect(at > now && blocker != nil)
                #expect(rules.available(now: at) >= 1, "seed \(seed): nothing fits at \(at)")
                #expect(rules.available(now: at - 0.001) == 0, "seed \(seed): something fitted before \(at)")
                now = at
                continue
            }
            now += Double.random(in: 0...2, using: &random)
        }
    }

    @Test("a server's X-RateLimit-Remaining is kept until its Reset, less what left after the reply that said it")
    func serverRemainingIsHonouredUntilReset() {
        var rules = RateLimits(limits: [])
        rules.take(1, now: 10)
        // The reply to the request sent at 10 says 3 remain until 70.
        rules.observe(limit: 5, remaining: 3, resetAt: 70, sentAt: 10)
        #expect(rules.available(now: 11) == 3)
        rules.take(2, now: 12)
        #expect(rules.available(now: 13) == 1)
        rules.take(1, now: 14)
        #expect(rules.available(now: 15) == 0)
        #expect(rules.nextAvailable(now: 15).at == 70)
        if case .server(let limit, _, let until)? = rules.nextAvailable(now: 15).blocker {
            #expect(limit == 5 && until == 70)
        } else {
            Issue.record("expected the server's quota to be named")
        }
        // A late reply to the request sent at 12 says 1 remained then: it counts the one sent
        // at 12 beside it as spent, and the one at 14 too; nothing more is allowed.
        rules.observe(limit: 5, remaining: 1, resetAt: 70, sentAt: 12)
        #expect(rules.available(now: 16) == 0)
        // After the reset the server's word no longer limits anything.
        #expect(rules.available(now: 70) == Int.max)
        // A report of a later window replaces the old one.
        rules.take(1, now: 71)
        rules.observe(limit: 5, remaining: 4, resetAt: 131, sentAt: 71)
        #expect(rules.available(now: 72) == 4)
    }

    @Test("without a Reset the server's Remaining cannot be waited for: its 429 will say how long")
    func remainingWithoutResetDoesNotBlock() {
        var rules = RateLimits(limits: [])
        rules.take(1, now: 1)
        rules.observe(limit: 5, remaining: 0, resetAt: nil, sentAt: 1)
        #expect(rules.available(now: 2) == Int.max)
    }

    @Test("a Retry-After closes the quota until then, and the latest one wins")
    func retryAfterClosesUntilThen() {
        var rules = RateLimits(limits: [RateLimit(count: 100, window: 60)])
        rules.close(until: 3600)
        rules.close(until: 100)
        #expect(rules.available(now: 50) == 0)
        #expect(rules.nextAvailable(now: 50).at == 3600)
        #expect(rules.nextAvailable(now: 50).blocker == .closed(until: 3600))
        #expect(rules.available(now: 3600) == 100)
    }

    @Test("--rate values: R, N/WINDOW with units and lengths, and clear refusals")
    func parsingTheRateFlag() throws {
        #expect(try RateLimit.parseFlag("10") == .perSecond(10))
        #expect(try RateLimit.parseFlag("0") == .perSecond(0))
        #expect(try RateLimit.parseFlag("10/min") == .quota(RateLimit(count: 10, window: 60)))
        #expect(try RateLimit.parseFlag("100/hour") == .quota(RateLimit(count: 100, window: 3600)))
        #expect(try RateLimit.parseFlag("500/day") == .quota(RateLimit(count: 500, window: 86_400)))
        #expect(try RateLimit.parseFlag("20/10s") == .quota(RateLimit(count: 20, window: 10)))
        #expect(try RateLimit.parseFlag(" 5/2h ") == .quota(RateLimit(count: 5, window: 7200)))
        #expect(RateLimit(count: 10, window: 60).description == "10/min")
        #expect(RateLimit(count: 20, window: 10).description == "20/10s")
        for bad in ["ten", "10/fortnight", "0/min", "-1/min", "10/0s", "10/40day", "1.5/min", "/min", "10/"] {
            #expect(throws: KeyAssignError.self, "\(bad)") { try RateLimit.parseFlag(bad) }
            do {
                _ = try RateLimit.parseFlag(bad)
            } catch let error as KeyAssignError {
                #expect(error.status == .usage && error.message.contains("--rate \(bad)"), "\(error.message)")
            } catch {}
        }
    }
}
