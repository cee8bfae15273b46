/// What one attempt came to, in `attempts.outcome`: part of keyassign's interface, like
/// `WorkState` (scripts, `history`, `report --html` and `--metrics-file` read it). The raw values
/// are the stored text, so a case is never renamed; docs/states.md lists the same cases (a test
/// holds it to this list).
///
/// Every attempt is one row of `attempts`, whatever came of it: the outcome says what the
/// attempt did to its row, and whether it counted towards `--max-attempts`.
public enum AttemptOutcome: String, Sendable, CaseIterable, Codable {
    /// A verified code 800: the key is now the buyer's. The row is `assigned`.
    case assigned
    /// A verified 801, and no earlier attempt of the row can have reached the server: the
    /// server refused the key. The row is `rejected`.
    case rejected
    /// A verified 801 after an earlier attempt that may have reached the server: probably our
    /// own earlier assignment, never reported as a plain rejection. The row is `uncertain`.
    case uncertain
    /// A verified code other than 800/801, another 4xx or a redirect, or a retryable failure
    /// on the last of `--max-attempts`. The row is `failed`.
    case failed
    /// The request may have reached the server without a verified answer (a timeout or a lost
    /// connection after sending, a 5xx, a reply failing verification, cancelled at shutdown),
    /// or something in front of the server refused this one request unsigned. The row is
    /// `retry`, due after a backoff.
    case retry
    /// HTTP 429: refused unprocessed. The attempt is refunded, the row goes back to `pending`,
    /// and every sender pauses.
    case rateLimited = "rate_limited"
    /// The request provably never left (cannot resolve, connection refused, a connect timeout,
    /// a failed TLS handshake). The attempt is refunded and the row goes back to `pending`; the
    /// circuit breaker counts these.
    case notSent = "not_sent"
    /// A signed auth refusal (codes 100–103, 150), or unsigned refusals of every request: the
    /// run stops (exit 3). The attempt is refunded and the row goes back to `pending`.
    case authStop = "auth_stop"
    /// The server's TLS certificate was refused: a configuration error, the run stops (exit
    /// 78). Nothing was sent; the attempt is refunded and the row goes back to `pending`.
    case configStop = "config_stop"
    /// Written at the start of a run for a row that a dead run left `in_flight`: its request may
    /// have reached the server. The row is `retry`, due now, with `maybe_delivered = 1`.
    case interrupted
}
