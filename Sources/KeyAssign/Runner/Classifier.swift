/// What one attempt's result means for its row: the pure decision table of the runner.
/// Its inputs are the transport result, the verdict on the reply (nil when the reply was not
/// verified: no body, a 429, a 5xx), whether an earlier attempt may have reached the server,
/// and the attempt count.
public struct Classification: Sendable, Equatable {
    /// Where the row goes next.
    public var state: WorkState
    /// `attempts.outcome`: assigned, rejected, uncertain, failed, retry, rate_limited, auth_stop.
    public var outcome: String
    /// The row's new `maybe_delivered`.
    public var maybeDelivered: Bool
    /// False when the attempt provably had no effect and must not count towards
    /// --max-attempts (a 429, an auth refusal).
    public var countsAttempt: Bool
    /// The verified code, if any (an unverified code is never recorded as the row's code).
    public var code: Int?
    /// `trusted`, or the verifier's reason.
    public var verdict: String?
    public var error: String?
    /// Set when the whole run must stop: the message names the code.
    public var authStop: String?
    public var rateLimited: Bool = false
}

public enum Classifier {
    public static let authCodes: Set<Int> = [100, 101, 102, 103, 150]

    public static func classify(_ result: TransportResult, verdict: ReplyVerdict?, maybeDelivered: Bool,
                                attempts: Int, maxAttempts: Int) -> Classification {
        func retry(_ error: String, delivered: Bool, verdictText: String? = nil) -> Classification {
            let nowMaybe = maybeDelivered || delivered
            if attempts >= maxAttempts {
                return Classification(state: .failed, outcome: "failed", maybeDelivered: nowMaybe, countsAttempt: true,
                                      code: nil, verdict: verdictText,
                                      error: "gave up after \(attempts) attempt\(attempts == 1 ? "" : "s"): \(error)")
            }
            return Classification(state: .retry, outcome: "retry", maybeDelivered: nowMaybe, countsAttempt: true,
                                  code: nil, verdict: verdictText, error: error)
        }
        func authStop(_ message: String, code: Int?, verdictText: String?) -> Classification {
            Classification(state: .pending, outcome: "auth_stop", maybeDelivered: maybeDelivered, countsAttempt: false,
                           code: code, verdict: verdictText, error: message, authStop: message)
        }
        func failed(_ error: String, code: Int?, verdictText: String?) -> Classification {
            Classification(state: .failed, outcome: "failed", maybeDelivered: maybeDelivered, countsAttempt: true,
                           code: code, verdict: verdictText, error: error)
        }

        switch result {
        case .notSent(let error):
            return retry("\(error) (not sent)", delivered: false)
        case .maybeSent(let error):
            return retry("\(error) (the request may have reached the server)", delivered: true)
        case .response(let status, _, _):
            var trusted: SignedPayload?
            if case .trusted(let payload)? = verdict { trusted = payload }
            let verdictText = verdict?.storedText
            if status == 401 || status == 403 {
                let named = trusted.map { "code \($0.code) (\($0.message))" } ?? "an unverified reply"
                return authStop("the server refused the API key: HTTP \(status), \(named)", code: trusted?.code,
                                verdictText: verdictText)
            }
            if let payload = trusted, authCodes.contains(payload.code) {
                return authStop("the server refused the API key: code \(payload.code) (\(payload.message)), HTTP \(status)",
                                code: payload.code, verdictText: verdictText)
            }
            if status == 429 {
                return Classification(state: .retry, outcome: "rate_limited", maybeDelivered: maybeDelivered,
                                      countsAttempt: false, code: nil, verdict: verdictText,
                                      error: "HTTP 429 too many requests", rateLimited: true)
            }
            if (500...599).contains(status) {
                return retry("HTTP \(status)", delivered: true, verdictText: verdictText)
            }
            if (200...299).contains(status) {
                guard let payload = trusted else {
                    let why: String
                    if case .untrusted(let reason, let detail)? = verdict {
                        why = detail.isEmpty ? reason.rawValue : "\(reason.rawValue): \(detail)"
                    } else {
                        why = "not verified"
                    }
                    return retry("HTTP \(status) reply failed verification (\(why))", delivered: true,
                                 verdictText: verdictText)
                }
                switch payload.code {
                case 800:
                    return Classification(state: .assigned, outcome: "assigned", maybeDelivered: maybeDelivered,
                                          countsAttempt: true, code: 800, verdict: verdictText, error: nil)
                case 801:
                    if maybeDelivered {
                        return Classification(state: .uncertain, outcome: "uncertain", maybeDelivered: true,
                                              countsAttempt: true, code: 801, verdict: verdictText,
                                              error: "801 after an earlier attempt may have reached the server: probably our own earlier assignment")
                    }
                    return Classification(state: .rejected, outcome: "rejected", maybeDelivered: false,
                                          countsAttempt: true, code: 801, verdict: verdictText, error: nil)
                default:
                    return failed("undocumented code \(payload.code) (\(payload.message))", code: payload.code,
                                  verdictText: verdictText)
                }
            }
            if (300...399).contains(status) {
                return failed("HTTP \(status) redirect refused: check --server", code: nil, verdictText: verdictText)
            }
            // The protocol answers every per-key problem with 200 and a code, so these mean the
            // URL reaches something other than the endpoint: say where to look.
            let hint = status == 404 || status == 405 ? ": no assign-license-key endpoint at this URL, check --server" : ""
            return failed("HTTP \(status)\(hint)", code: trusted?.code, verdictText: verdictText)
        }
    }
}
