/// What one attempt's result means for its row: the pure decision table of the runner.
/// Its inputs are the transport result, the verdict on the reply (nil when the reply was not
/// verified: no body, a 429, a 5xx), whether an earlier attempt may have reached the server,
/// and the attempt count.
public struct Classification: Sendable, Equatable {
    /// Where the row goes next.
    public var state: WorkState
    /// What the attempt came to (`attempts.outcome`).
    public var outcome: AttemptOutcome
    /// The row's new `maybe_delivered`.
    public var maybeDelivered: Bool
    /// False when the attempt provably had no effect and must not count towards
    /// --max-attempts (a 429, an auth refusal, a request that never left).
    public var countsAttempt: Bool
    /// The verified code, if any (an unverified code is never recorded as the row's code).
    public var code: Int?
    /// The verifier's verdict as stored in `attempts.verdict` (`ReplyVerdict.storedText`):
    /// `trusted`, or the reason; nil when the reply was not verified.
    public var verdictText: String?
    public var error: String?
    /// Set when the whole run must stop: the message names the code.
    public var authStop: String?
    public var rateLimited: Bool = false
    /// The request never left (connect, DNS, TLS handshake): what the circuit breaker counts.
    public var notSent: Bool = false
    /// An unsigned 401/403/407: something in front of the license server refused this request.
    /// This classification is the row's own problem (retry, then failed); the runner's
    /// `RefusalGate` decides whether it is in fact the whole run's (`Classifier.asAuthStop`).
    public var unsignedRefusal: Bool = false
    /// Set when the configuration is wrong (the server's certificate refused): stop with 78.
    public var configStop: String?
}

public enum Classifier {
    public static let authCodes: Set<Int> = [100, 101, 102, 103, 150]
    /// Refusals: the license server's own come signed with an auth code; 407 is a proxy's.
    public static let refusalStatuses: Set<Int> = [401, 403, 407]

    public static func classify(
        _ result: TransportResult, verdict: ReplyVerdict?, maybeDelivered: Bool,
        attempts: Int, maxAttempts: Int
    ) -> Classification {
        func retry(_ error: String, delivered: Bool, verdictText: String? = nil) -> Classification {
            let nowMaybe = maybeDelivered || delivered
            if attempts >= maxAttempts {
                let gaveUp = "gave up after \(attempts) attempt\(attempts == 1 ? "" : "s") in this run: \(error)"
                if nowMaybe {
                    // An attempt may have reached the server: whether the key was assigned is
                    // unknown, and a row's recorded state never guesses. Reconciliation settles it.
                    return Classification(
                        state: .uncertain, outcome: .uncertain, maybeDelivered: true, countsAttempt: true,
                        code: nil, verdictText: verdictText,
                        error: gaveUp + "; an attempt may have reached the server, so the key's listing settles it")
                }
                // Provably never processed: `failed`, and a passing reason, so the next run
                // tries again with a fresh budget (`FailureKind`).
                return Classification(
                    state: .failed, outcome: .failed, maybeDelivered: nowMaybe, countsAttempt: true,
                    code: nil, verdictText: verdictText, error: gaveUp)
            }
            return Classification(
                state: .retry, outcome: .retry, maybeDelivered: nowMaybe, countsAttempt: true,
                code: nil, verdictText: verdictText, error: error)
        }
        func authStop(_ message: String, code: Int?, verdictText: String?) -> Classification {
            Classification(
                state: .pending, outcome: .authStop, maybeDelivered: maybeDelivered, countsAttempt: false,
                code: code, verdictText: verdictText, error: message, authStop: message)
        }
        func failed(_ error: String, code: Int?, verdictText: String?, delivered: Bool) -> Classification {
            if code == nil && maybeDelivered {
                // Only a verified code is the server's word; an unsigned refusal now says nothing
                // about what an earlier attempt may have done, so the row is not `failed` on it.
                return Classification(
                    state: .uncertain, outcome: .uncertain, maybeDelivered: true, countsAttempt: true,
                    code: nil, verdictText: verdictText,
                    error: error + "; an earlier attempt may have reached the server, so the key's listing settles it")
            }
            return Classification(
                state: .failed, outcome: .failed, maybeDelivered: maybeDelivered || delivered,
                countsAttempt: true, code: code, verdictText: verdictText, error: error)
        }

        switch result {
        case .notSent(let error):
            // Provably never left: the row goes back as if it had not been claimed. A server
            // that stays unreachable is the circuit breaker's business, not the row's.
            return Classification(
                state: .pending, outcome: .notSent, maybeDelivered: maybeDelivered,
                countsAttempt: false, code: nil, verdictText: nil, error: "\(error) (not sent)",
                notSent: true)
        case .tlsFailure(let error):
            let message =
                "the server's TLS certificate was refused: \(error). If a private CA signed it, "
                + "give that CA's certificate with --ca-file PATH; check that the host name in --server is one "
                + "the certificate names"
            return Classification(
                state: .pending, outcome: .configStop, maybeDelivered: maybeDelivered,
                countsAttempt: false, code: nil, verdictText: nil, error: message, configStop: message)
        case .maybeSent(let error):
            return retry("\(error) (the request may have reached the server)", delivered: true)
        case .response(let status, _, _, _):
            var trusted: SignedPayload?
            if case .trusted(let payload)? = verdict { trusted = payload }
            let verdictText = verdict?.storedText
            if let payload = trusted, authCodes.contains(payload.code) {
                return authStop(
                    "the server refused the API key: code \(payload.code) (\(payload.message)), HTTP \(status)",
                    code: payload.code, verdictText: verdictText)
            }
            if refusalStatuses.contains(status) && trusted == nil {
                // The license server signs its refusals (100–103, 150). An unsigned one comes
                // from a firewall, proxy or gateway, which refuses before passing a request on:
                // so it does not make the row maybe-delivered.
                var refused = retry(
                    "HTTP \(status) without a signed reply: something in front of the license server "
                        + "(a firewall, proxy or gateway) refused this request", delivered: false,
                    verdictText: verdictText)
                refused.unsignedRefusal = true
                return refused
            }
            if status == 429 {
                // Refused without being processed, like a request that never left: the row goes
                // back to pending, and the pause that every sender now takes is the runner's.
                return Classification(
                    state: .pending, outcome: .rateLimited, maybeDelivered: maybeDelivered,
                    countsAttempt: false, code: nil, verdictText: verdictText,
                    error: "HTTP 429 too many requests", rateLimited: true)
            }
            if status == 408 && trusted == nil {
                // Request Timeout: the server gave up reading the request, so it did not act on it.
                return retry(
                    "HTTP 408 request timeout (the server did not read the whole request)", delivered: false,
                    verdictText: verdictText)
            }
            if (500...599).contains(status) {
                return retry("HTTP \(status)", delivered: true, verdictText: verdictText)
            }
            // A verified payload proves the license server received the request. Only a 200 with
            // 800 or 801 says what it did; under any other status, or with a code the protocol
            // does not document, it may have assigned the key: a later 801 must not read as a
            // plain rejection.
            let answered = trusted != nil
            if (200...299).contains(status) {
                guard let payload = trusted else {
                    let why: String
                    if case .untrusted(let reason, let detail)? = verdict {
                        why = detail.isEmpty ? reason.rawValue : "\(reason.rawValue): \(detail)"
                    } else {
                        why = "not verified"
                    }
                    return retry(
                        "HTTP \(status) reply failed verification (\(why))", delivered: true,
                        verdictText: verdictText)
                }
                switch payload.code {
                case 800:
                    return Classification(
                        state: .assigned, outcome: .assigned, maybeDelivered: maybeDelivered,
                        countsAttempt: true, code: 800, verdictText: verdictText, error: nil)
                case 801:
                    if maybeDelivered {
                        return Classification(
                            state: .uncertain, outcome: .uncertain, maybeDelivered: true,
                            countsAttempt: true, code: 801, verdictText: verdictText,
                            error:
                                "801 after an earlier attempt may have reached the server: probably our own earlier assignment"
                        )
                    }
                    return Classification(
                        state: .rejected, outcome: .rejected, maybeDelivered: false,
                        countsAttempt: true, code: 801, verdictText: verdictText, error: nil)
                default:
                    return failed(
                        "undocumented code \(payload.code) (\(payload.message))", code: payload.code,
                        verdictText: verdictText, delivered: true)
                }
            }
            let signed = trusted.map { ", with a verified code \($0.code) (\($0.message))" } ?? ""
            if (300...399).contains(status) {
                return failed(
                    "HTTP \(status) redirect refused\(signed): check --server", code: trusted?.code,
                    verdictText: verdictText, delivered: answered)
            }
            // The protocol answers every per-key problem with 200 and a code, so these mean the
            // URL reaches something other than the endpoint: say where to look.
            let hint =
                status == 404 || status == 405 ? ": no assign-license-key endpoint at this URL, check --server" : ""
            return failed(
                "HTTP \(status)\(signed)\(hint)", code: trusted?.code, verdictText: verdictText,
                delivered: answered)
        }
    }

    /// What an unsigned refusal becomes when the `RefusalGate` decides it was the whole run's
    /// problem (an API key or proxy refused everywhere): an auth stop, the row back to pending.
    public static func asAuthStop(_ refused: Classification, message: String) -> Classification {
        Classification(
            state: .pending, outcome: .authStop, maybeDelivered: refused.maybeDelivered,
            countsAttempt: false, code: nil, verdictText: refused.verdictText,
            error: refused.error.map { "\(message) (\($0))" } ?? message, authStop: message)
    }
}
