/// One finished exchange as the run's state machine hears it (`RunStateMachine.replied`): the
/// attempt to record, and what the run learns from it (the server was reached, a 429 asked
/// for a pause). Made by `judge`, the pure step from a transport result to an attempt, which
/// the runner and the simulator both call: verify, classify, schedule.
package struct RowReply: Sendable {
    package var attempt: CompletedAttempt
    /// Monotonic seconds: when the request left, when its result came back.
    package var sentAt: Double
    package var receivedAt: Double
    /// A 429's pause as the server asked it (nil: the exponential default).
    package var retryAfter: Double?
    /// The request never left: the transport's words (what the circuit breaker keeps).
    package var notSentError: String?
    /// The reply reached us from the server (a response, or a failure after sending).
    package var reachedServer: Bool
    /// The reply's `X-RateLimit-*` headers, if it had any.
    package var rateLimit: RateLimitHeaders?
    /// What the reply says of the key, the clock and the server (`EarlyStop`).
    package var observation: EarlyStop.Observation
    package var trusted: Bool
    package var untrusted: Bool

    /// Verifies a reply, classifies it and schedules the row's next attempt. `jitter` draws
    /// the backoff (the system's generator in a run, a seeded one in the simulator).
    package static func judge<G: RandomNumberGenerator>(
        _ row: ClaimedRow, result: TransportResult, verifier: ReplyVerifier, options: RunOptions,
        redaction: ReplyRedaction, startedWall: Double, startedMono: Double, endedWall: Double, endedMono: Double,
        jitter: inout G
    ) -> RowReply {
        var verdict: ReplyVerdict?
        var status: Int?
        var reply: [UInt8]?
        var retryAfterHeader: String?
        var rateLimit: RateLimitHeaders?
        if case .response(let code, let retryAfter, let body, let headers) = result {
            rateLimit = headers
            status = code
            reply = body
            retryAfterHeader = retryAfter
            if !body.isEmpty && code != 429 && !(500...599).contains(code) {
                verdict = verifier.verify(body, maxAge: options.maxClockSkew, now: endedWall)
            }
        }
        // Redacted before anything logs, stores or summarises its texts.
        let classification = redaction.classification(
            Classifier.classify(
                result, verdict: verdict, maybeDelivered: row.maybeDelivered, attempts: row.attempts,
                maxAttempts: options.maxAttempts))
        var nextAttemptAt: Double?
        var retryAfter: Double?
        if classification.rateLimited {
            retryAfter = RetryAfter.seconds(header: retryAfterHeader, body: reply ?? [], now: endedWall)
        } else if classification.state == .retry {
            let backoff = Backoff(base: options.backoffBase, cap: options.backoffCap)
            nextAttemptAt = endedWall + backoff.delay(afterAttempt: row.attempts, using: &jitter)
        }
        let signedReply = redaction.compact(reply, verdict: verdict)
        let attempt = CompletedAttempt(
            row: row, classification: classification, nextAttemptAt: nextAttemptAt,
            startedAt: startedWall, endedAt: endedWall,
            latencyMS: (endedMono - startedMono) * 1000, httpStatus: status,
            reply: signedReply == nil ? redaction.stored(reply, verdict: verdict) : nil,
            signingKey: verdict?.signingKey, signedReply: signedReply)
        var notSentError: String?
        var reached = false
        switch result {
        case .notSent(let error): notSentError = error
        case .tlsFailure: break
        case .response, .maybeSent: reached = true
        }
        var trusted = false
        var untrusted = false
        switch verdict {
        case .trusted?: trusted = true
        case .untrusted?: untrusted = true
        case nil: break
        }
        return RowReply(
            attempt: attempt, sentAt: startedMono, receivedAt: endedMono, retryAfter: retryAfter,
            notSentError: notSentError, reachedServer: reached, rateLimit: rateLimit,
            observation: EarlyStop.observation(result, verdict: verdict, now: endedWall), trusted: trusted,
            untrusted: untrusted)
    }
}
