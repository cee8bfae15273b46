#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why a run stopped sending before its queue was empty. Each reason is set once, by whichever
/// part of the run met it; the dispatcher stops on any, and the summary turns the most serious
/// into the exit status.
package struct RunStops: Sendable {
    /// The first SIGINT or SIGTERM (exit 130 / 143).
    package var signal: Int32?
    /// A signed auth refusal, or unsigned refusals of every request (exit 3).
    package var auth: String?
    /// The server's certificate was refused: a configuration error (exit 78).
    package var config: String?
    /// The server stayed unreachable for --max-wait (exit 69).
    package var unreachable: String?
    /// A 429 pause would have run past --max-wait (exit 1, rows left for the next run).
    package var maxWait: String?
    /// The quota is spent until after --max-wait (exit 10, rows left pending), and when it
    /// reopens (Unix seconds).
    package var quota: String?
    package var quotaReopensAt: Double?

    package var any: Bool {
        signal != nil || auth != nil || config != nil || unreachable != nil || maxWait != nil || quota != nil
    }

    /// The exit status and the stop reason the summary gives. `unfinished`: rows this run
    /// touched ended `failed` or `uncertain`, or rows are left to send; `troubled`: the former.
    /// A spent quota is not a failure, but rows that failed still are.
    package func exitStatus(unfinished: Bool, troubled: Bool = false) -> (status: ExitStatus, reason: String?) {
        if let config { return (.config, config) }
        if let auth { return (.authStopped, auth) }
        if let signal { return signal == SIGINT ? (.interrupted, "SIGINT") : (.terminated, "SIGTERM") }
        if let unreachable { return (.unavailable, unreachable) }
        if let quota, !troubled { return (.quotaSpent, quota) }
        if unfinished { return (.someFailed, maxWait ?? quota) }
        return (.ok, nil)
    }
}
