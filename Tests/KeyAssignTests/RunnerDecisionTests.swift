import Foundation
import Testing

@testable import KeyAssign

/// The runner's pure decisions about outages, refusals and waiting, without sockets.
@Suite struct RunnerDecisionTests {
    // MARK: CircuitBreaker

    @Test("a few refused connections among successes never open the breaker")
    func scatteredFailuresKeepItClosed() {
        var breaker = CircuitBreaker(threshold: 5, window: 300)
        for round in 0..<20 {
            for i in 0..<4 { breaker.notSent(at: Double(round * 10 + i), error: "refused") }
            #expect(breaker.permission(now: Double(round * 10 + 4), inFlight: 0) == .send(Int.max))
            breaker.reached()
        }
        #expect(!breaker.isOpen)
    }

    @Test("an open breaker probes one at a time, further and further apart, then gives up at the window's end")
    func probesThenGivesUp() {
        var breaker = CircuitBreaker(threshold: 3, window: 20, firstProbeDelay: 1, maxProbeDelay: 8)
        for t in [0.0, 0.1, 0.2] { breaker.notSent(at: t, error: "refused") }
        #expect(breaker.isOpen)
        // A probe already out: nothing else goes.
        #expect(breaker.permission(now: 0.3, inFlight: 1) == .awaitProbe)
        #expect(breaker.permission(now: 0.3, inFlight: 0) == .probeAt(1.2))
        var now = 1.2
        var probes: [Double] = []
        while true {
            let permission = breaker.permission(now: now, inFlight: 0)
            if permission == .giveUp { break }
            if case .probeAt(let at) = permission {
                now = at
                continue
            }
            #expect(permission == .send(1))
            probes.append(now)
            breaker.notSent(at: now, error: "refused")
            #expect(probes.count < 20)
            if probes.count >= 20 { break }
        }
        // 1, 2, 4, 8, 8 … s apart, and the last one exactly when the 20 s window ends.
        #expect(probes == [1.2, 3.2, 7.2, 15.2, 20])
        #expect(breaker.lastError == "refused")
        #expect(breaker.unreachableFor(now: 20) == 20)
    }

    @Test("a probe that reaches the server closes the breaker and sending goes back to full speed")
    func aProbeThatGetsThroughCloses() {
        var breaker = CircuitBreaker(threshold: 2, window: 60)
        breaker.notSent(at: 0, error: "refused")
        breaker.notSent(at: 0, error: "refused")
        #expect(breaker.permission(now: 5, inFlight: 0) == .send(1))
        breaker.reached()
        #expect(breaker.permission(now: 5, inFlight: 0) == .send(Int.max))
        // A later outage starts its own window and its probes again from the first delay.
        breaker.notSent(at: 100, error: "refused")
        breaker.notSent(at: 100, error: "refused")
        #expect(breaker.permission(now: 100, inFlight: 0) == .probeAt(101))
    }

    @Test("with --max-wait 0 the run gives up as soon as the breaker opens")
    func zeroWindowGivesUpAtOnce() {
        var breaker = CircuitBreaker(threshold: 5, window: 0)
        for _ in 0..<4 { breaker.notSent(at: 3, error: "refused") }
        #expect(breaker.permission(now: 3, inFlight: 0) == .send(Int.max))
        breaker.notSent(at: 3, error: "refused")
        #expect(breaker.permission(now: 3, inFlight: 4) == .giveUp)
    }

    // MARK: RefusalGate

    @Test("one refused row among answered ones is that row's problem")
    func aRefusalFollowedByAVerifiedReplyIsReleased() {
        var gate = RefusalGate<Int>(threshold: 10)
        guard case .hold = gate.refused(1) else {
            Issue.record("expected hold")
            return
        }
        guard case .hold = gate.refused(2) else {
            Issue.record("expected hold")
            return
        }
        #expect(gate.verifiedReply() == [1, 2])
        #expect(gate.held.isEmpty)
        // Later refusals wait for the next verified reply, or for the end of the run.
        _ = gate.refused(3)
        let settled = gate.settle()
        #expect(settled.items == [3] && !settled.stopsRun)
    }

    @Test("ten rows in a row refused without a signed reply stop the run, whenever it happens")
    func aRunOfRefusalsStops() {
        var gate = RefusalGate<Int>(threshold: 10)
        for row in 0..<9 {
            guard case .hold = gate.refused(row) else {
                Issue.record("stopped too early at \(row)")
                return
            }
        }
        guard case .stop(let rows) = gate.refused(9) else {
            Issue.record("expected a stop")
            return
        }
        #expect(rows == Array(0..<10))
        // Mid-run too: an IP filter that starts refusing after the server answered.
        var later = RefusalGate<Int>(threshold: 3)
        #expect(later.verifiedReply().isEmpty)
        _ = later.refused(1)
        _ = later.refused(2)
        guard case .stop = later.refused(3) else {
            Issue.record("expected a stop")
            return
        }
    }

    @Test("a run that ends with only refusals, and no signed reply at all, is an auth stop")
    func onlyRefusalsAtTheEnd() {
        var gate = RefusalGate<Int>(threshold: 10)
        _ = gate.refused(1)
        let settled = gate.settle()
        #expect(settled.items == [1] && settled.stopsRun)
        #expect(gate.settle().items.isEmpty && !gate.settle().stopsRun)
    }

    // MARK: WaitBudget

    @Test func theBudgetRefusesAWaitThatDoesNotFit() {
        var budget = WaitBudget(limit: 10)
        #expect(budget.allows(10))
        budget.spend(4)
        #expect(budget.allows(6) && !budget.allows(6.5))
        budget.spend(-3)
        #expect(budget.remaining == 6)
        #expect(!WaitBudget(limit: 0).allows(0.001))
    }

    // MARK: TokenBucket waves

    @Test("eight 429s of one wave raise the streak once; the next wave raises it again")
    func aWaveOf429sCountsOnce() {
        let bucket = TokenBucket(rate: 0, burst: 2, now: 0)
        // Eight requests sent together at t = 1, refused together.
        var end = 0.0
        for i in 0..<8 { end = bucket.pause(seconds: nil, now: 1.01 + Double(i) * 0.001, sentAt: 1) }
        #expect(bucket.streak == 1)
        #expect(end < 2.1, "one wave must pause ~1 s, not \(end - 1) s")
        // The next wave leaves after the pause and is refused again: 2 s.
        for i in 0..<8 { end = bucket.pause(seconds: nil, now: 2.2 + Double(i) * 0.001, sentAt: 2.1) }
        #expect(bucket.streak == 2)
        #expect(abs(end - 4.207) < 0.01)
        // A reply to a request sent before the pause says nothing about the server now.
        bucket.noteNotRateLimited(sentAt: 2.0)
        #expect(bucket.streak == 2)
        bucket.noteNotRateLimited(sentAt: 4.3)
        #expect(bucket.streak == 0)
    }
}
