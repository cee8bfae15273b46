import Foundation
import Testing

@testable import KeyAssign

/// `RunStateMachine` on its own: events in, actions out, on a clock the test holds. No
/// sockets, threads or sleeps: every time is a number passed in.
@Suite struct RunStateMachineTests {
    private func options(concurrency: Int = 4, rate: Double = 0, burst: Int = 2, maxWait: Double = 60) -> RunOptions {
        // swiftlint:disable:next force_try
        var options = RunOptions(
            databasePath: "/nonexistent",
            endpoint: try! ServerEndpoint(base: "http://127.0.0.1:1", allowInsecureHTTP: true),
            apiKey: "k")
        options.concurrency = concurrency
        options.rate = rate
        options.burst = burst
        options.maxWait = maxWait
        options.progress = .quiet
        return options
    }

    private func machine(_ options: RunOptions) -> RunStateMachine {
        RunStateMachine(options: options, limiter: RunStateMachine.standardLimiter(options, now: 0))
    }

    private func row(_ id: Int64, attempts: Int = 1) -> ClaimedRow {
        ClaimedRow(
            id: id, request: AssignRequest(licenseKey: "K\(id)", ownerName: nil, email: nil, idempotencyToken: "t"),
            attempts: attempts, maybeDelivered: false, claimedAt: 0)
    }

    private func reply(_ id: Int64, _ result: TransportResult, sentAt: Double, at: Double, retryAfter: Double? = nil)
        -> RowReply
    {
        let classification = Classifier.classify(
            result, verdict: nil, maybeDelivered: false, attempts: 1, maxAttempts: 5)
        let attempt = CompletedAttempt(
            row: row(id), classification: classification, nextAttemptAt: nil, startedAt: sentAt,
            endedAt: at, latencyMS: 0,
            httpStatus: {
                if case .response(let status, _, _, _) = result { return status }
                return nil
            }(), reply: nil, signingKey: nil)
        var notSent: String?
        if case .notSent(let error) = result { notSent = error }
        return RowReply(
            attempt: attempt, sentAt: sentAt, receivedAt: at, retryAfter: retryAfter, notSentError: notSent,
            reachedServer: notSent == nil, rateLimit: nil, observation: .neutral, trusted: false,
            untrusted: false)
    }

    @Test("claims at most the free slots, then waits for a reply (no timer), and a reply wakes it")
    func slots() {
        var m = machine(options(concurrency: 4))
        guard case .claim(let n) = m.next(now: 0) else {
            Issue.record("expected a claim")
            return
        }
        #expect(n == 4)
        m.claimed(4, now: 0)
        guard case .wait(let until) = m.next(now: 0) else {
            Issue.record("expected a wait")
            return
        }
        #expect(until == nil)
        let effects = m.replied(reply(1, .maybeSent("timeout"), sentAt: 0, at: 1))
        #expect(effects.wakeDispatcher)
        #expect(effects.record.count == 1)
        guard case .claim(let again) = m.next(now: 1) else {
            Issue.record("expected a claim")
            return
        }
        #expect(again == 1)
    }

    @Test("a 429 with Retry-After pauses every sender until its end; the pause counts against --max-wait")
    func pause() {
        var m = machine(options(concurrency: 2, maxWait: 10))
        _ = m.next(now: 0)
        m.claimed(2, now: 0)
        _ = m.replied(reply(1, .response(status: 429, retryAfter: "3", body: []), sentAt: 0, at: 1, retryAfter: 3))
        guard case .wait(let until) = m.next(now: 1) else {
            Issue.record("expected a wait")
            return
        }
        #expect(until == 4)
        // Woken early (the other reply): still paused, still no claim.
        _ = m.replied(reply(2, .response(status: 503, retryAfter: nil, body: []), sentAt: 0, at: 2))
        guard case .wait(let later) = m.next(now: 2) else {
            Issue.record("expected a wait")
            return
        }
        #expect(later == 4)
        guard case .claim = m.next(now: 4) else {
            Issue.record("expected a claim after the pause")
            return
        }
        #expect(m.budget.spent == 3)
    }

    @Test("a pause longer than what is left of --max-wait stops the run at once (exit 1), naming the server's figure")
    func pauseBeyondMaxWait() {
        var m = machine(options(concurrency: 1, maxWait: 5))
        _ = m.next(now: 0)
        m.claimed(1, now: 0)
        _ = m.replied(
            reply(1, .response(status: 429, retryAfter: "3600", body: []), sentAt: 0, at: 0.5, retryAfter: 3600))
        guard case .stop = m.next(now: 0.5) else {
            Issue.record("expected a stop")
            return
        }
        #expect(m.stops.maxWait?.contains("3600 s") == true)
        #expect(m.stops.exitStatus(unfinished: true).status == .someFailed)
        let notices = m.takeNotices()
        #expect(notices.contains { $0.level == .warning })
    }

    @Test("nothing to claim and nothing in flight: flush, then ask for the next due retry, then stop")
    func end() {
        var m = machine(options())
        _ = m.next(now: 0)
        m.claimed(0, now: 0)
        guard case .flush = m.next(now: 0) else {
            Issue.record("expected a flush")
            return
        }
        m.flushed()
        guard case .findNextDue = m.next(now: 0) else {
            Issue.record("expected findNextDue")
            return
        }
        m.nextDue(nil, wallNow: 1_000, now: 0)
        guard case .stop = m.next(now: 0) else {
            Issue.record("expected a stop")
            return
        }
        #expect(!m.stops.any)
        #expect(m.reconcilesAtEnd)
    }

    @Test("a result handed over since the claim began is flushed and claimed again before the run may end")
    func handingOver() {
        var m = machine(options(concurrency: 1))
        _ = m.next(now: 0)
        m.claimed(1, now: 0)
        // The request never left: its row goes back to pending once the result is committed.
        let effects = m.replied(reply(1, .notSent("refused"), sentAt: 0, at: 0.1))
        #expect(effects.record.count == 1)
        guard case .claim = m.next(now: 0.1) else {
            Issue.record("expected a claim")
            return
        }
        m.claimed(0, now: 0.1)  // the result was not committed yet: nothing due
        guard case .flush = m.next(now: 0.1) else {
            Issue.record("expected a flush")
            return
        }
        m.flushed()
        // Not the end: the flush may have made the row due.
        guard case .claim = m.next(now: 0.1) else {
            Issue.record("expected a second claim")
            return
        }
    }

    @Test("a retry due within --max-wait is waited for (counted); one beyond it ends the run with a notice")
    func dueRetries() {
        var m = machine(options(maxWait: 10))
        _ = m.next(now: 0)
        m.claimed(0, now: 0)
        _ = m.next(now: 0)
        m.flushed()
        _ = m.next(now: 0)
        m.nextDue(1_004, wallNow: 1_000, now: 0)
        guard case .wait(let until) = m.next(now: 0) else {
            Issue.record("expected a wait")
            return
        }
        #expect(until == 4)
        guard case .claim = m.next(now: 4) else {
            Issue.record("expected a claim")
            return
        }
        #expect(m.budget.spent == 4)
        m.claimed(0, now: 4)
        _ = m.next(now: 4)
        m.flushed()
        _ = m.next(now: 4)
        m.nextDue(1_100, wallNow: 1_004, now: 4)
        guard case .stop = m.next(now: 4) else {
            Issue.record("expected a stop")
            return
        }
        #expect(!m.stops.any)
        let notices = m.takeNotices()
        #expect(notices.isEmpty)  // quiet
    }

    @Test("pacing at --rate is not waiting: it costs nothing of --max-wait")
    func pacing() {
        var m = machine(options(concurrency: 8, rate: 2, burst: 2, maxWait: 1))
        guard case .claim(let n) = m.next(now: 0) else {
            Issue.record("expected a claim")
            return
        }
        #expect(n == 1)
        m.claimed(1, now: 0)
        guard case .wait(let until) = m.next(now: 0) else {
            Issue.record("expected a wait")
            return
        }
        #expect(abs((until ?? 0) - 0.5) < 1e-6)
        guard case .claim = m.next(now: 0.5) else {
            Issue.record("expected a claim")
            return
        }
        #expect(m.budget.spent == 0)
    }

    @Test("a signal stops the dispatcher at once; a second one is not the first")
    func signal() {
        var m = machine(options())
        let first = m.signalled(SIGTERM)
        let second = m.signalled(SIGTERM)
        #expect(first)
        #expect(!second)
        guard case .stop = m.next(now: 0) else {
            Issue.record("expected a stop")
            return
        }
        #expect(!m.reconcilesAtEnd)
        #expect(m.stops.exitStatus(unfinished: false).status == .terminated)
    }

    @Test("requests that never leave open the breaker: one probe at a time, then exit 69 at the end of --max-wait")
    func unreachable() {
        var m = machine(options(concurrency: 5, maxWait: 3))
        _ = m.next(now: 0)
        m.claimed(5, now: 0)
        for id in 1...5 { _ = m.replied(reply(Int64(id), .notSent("refused"), sentAt: 0, at: 0.01)) }
        var now = 0.01
        var probes = 0
        loop: for _ in 0..<100 {
            switch m.next(now: now) {
            case .claim(let n):
                #expect(n == 1)
                probes += 1
                m.claimed(1, now: now)
                _ = m.replied(reply(9, .notSent("refused"), sentAt: now, at: now + 0.01))
                now += 0.01
            case .wait(let until):
                now = until ?? now
            case .stop:
                break loop
            default:
                Issue.record("unexpected action")
                break loop
            }
        }
        #expect(probes >= 1)
        #expect(m.stops.unreachable != nil)
        #expect(m.stops.exitStatus(unfinished: true).status == .unavailable)
    }

    @Test(
        "eight concurrent 429s without Retry-After are one wave: pauses of 1 and 2 s, then the third wave's 4 s do not fit --max-wait 6 and stop the run"
    )
    func aWaveOf429sCountsOnce() {
        var m = machine(options(concurrency: 8, maxWait: 6))
        var now = 0.0
        var pauses: [Double] = []
        var sent = 0
        loop: for _ in 0..<10 {
            switch m.next(now: now) {
            case .claim(let n):
                #expect(n == 8)
                m.claimed(n, now: now)
                let sentAt = now
                sent += n
                // The wave's 429s come back over 70 ms, the first after 100 ms.
                for i in 0..<n {
                    now = sentAt + 0.1 + Double(i) * 0.01
                    _ = m.replied(
                        reply(Int64(i), .response(status: 429, retryAfter: nil, body: []), sentAt: sentAt, at: now))
                }
            case .wait(let until):
                guard let until else {
                    Issue.record("a pause is a timed wait")
                    break loop
                }
                // From the wave's last 429 (the earlier ones' pauses end sooner).
                pauses.append(((until - now) * 1000).rounded() / 1000)
                now = until
            case .stop:
                break loop
            default:
                Issue.record("unexpected action")
                break loop
            }
        }
        #expect(pauses == [1, 2], "one step per wave, not per reply (eight steps would pause 60 s)")
        #expect(sent == 24)
        #expect(m.limiter.pauses == 3)
        // What was waited (1 + 2 s) plus the third pause (4 s) would pass --max-wait 6.
        #expect(abs(m.budget.spent - 3) < 1e-9)
        #expect(m.stops.maxWait?.contains("asked to pause 4 s") == true, "\(m.stops.maxWait ?? "no stop")")
    }
}
