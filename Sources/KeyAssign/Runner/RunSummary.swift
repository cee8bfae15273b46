import Foundation

/// The run's summary: printed at the end, written by `--summary-json`, stored in `runs.summary`.
/// Never holds the API key.
public struct RunSummary: Codable, Sendable, Equatable {
    public var runID: Int64
    public var server: String
    public var database: String
    public var startedAt: String
    public var endedAt: String
    public var seconds: Double
    /// Requests sent (every attempt, 429s included).
    public var requests: Int
    /// Rows that reached a final state in this run, per second of run time.
    public var rowsPerSecond: Double
    /// Final states of the rows this run touched.
    public var assigned: Int
    public var rejected: Int
    public var uncertain: Int
    public var failed: Int
    /// Rows left for the next run (whole database).
    public var retryLeft: Int
    public var pendingLeft: Int
    public var recovered: Int
    public var rateLimited: Int
    public var pauses: Int
    public var untrustedReplies: Int
    public var stopReason: String?
    public var exitStatus: Int32
    /// Rows still `failed` that this run did not touch: earlier nights' final refusals, waiting
    /// for a person (`keyassign retry`). Optional: summaries stored before it lack it.
    public var failedEarlier: Int?
    /// Unix time the quota that stopped the run reopens; nil when no quota stopped it.
    public var quotaReopensAt: Double?

    enum CodingKeys: String, CodingKey {
        case runID = "run_id"
        case server, database
        case startedAt = "started_at"
        case endedAt = "ended_at"
        case seconds, requests
        case rowsPerSecond = "rows_per_second"
        case assigned, rejected, uncertain, failed
        case retryLeft = "retry_left"
        case pendingLeft = "pending_left"
        case recovered
        case rateLimited = "rate_limited"
        case pauses
        case untrustedReplies = "untrusted_replies"
        case stopReason = "stop_reason"
        case exitStatus = "exit_status"
        case failedEarlier = "failed_earlier"
        case quotaReopensAt = "quota_reopens_at"
    }

    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    public var text: String {
        var line = "run \(runID): \(assigned) assigned, \(rejected) rejected, \(uncertain) uncertain, \(failed) failed"
        line += "; \(retryLeft) left in retry, \(pendingLeft) pending"
        line +=
            "; \(requests) requests in \(String(format: "%.1f", seconds)) s (\(String(format: "%.1f", rowsPerSecond)) rows/s)"
        if recovered > 0 { line += "; \(recovered) recovered from a dead run" }
        if rateLimited > 0 { line += "; \(rateLimited) rate-limited (\(pauses) pauses)" }
        if untrustedReplies > 0 { line += "; \(untrustedReplies) replies failed verification" }
        if let failedEarlier, failedEarlier > 0 {
            line += "; \(failedEarlier) failed in earlier runs, waiting for `keyassign retry`"
        }
        if let stopReason { line += "; stopped: \(stopReason)" }
        return line + "; exit \(exitStatus)"
    }
}

extension RunSummary {
    /// The summary of a run that has ended: `touched` holds the states of the rows it made an
    /// attempt on, `queued` those of the rows left with work (whole table).
    init(
        runID: Int64, server: String, database: String, startedWall: Double, seconds: Double,
        tally: RunTally, pauses: Int, recovered: Int, touched: [WorkState: Int], queued: [WorkState: Int],
        stops: RunStops
    ) {
        let assigned = touched[.assigned] ?? 0
        let rejected = touched[.rejected] ?? 0
        let uncertain = touched[.uncertain] ?? 0
        let failed = touched[.failed] ?? 0
        let retryLeft = queued[.retry] ?? 0
        let pendingLeft = (queued[.pending] ?? 0) + (queued[.inFlight] ?? 0)
        let (status, stopReason) = stops.exitStatus(
            unfinished: uncertain + failed + retryLeft + pendingLeft > 0,
            troubled: uncertain + failed > 0)
        self.init(
            runID: runID, server: server, database: database,
            startedAt: Timestamps.iso8601(startedWall), endedAt: Timestamps.nowISO8601(),
            seconds: (seconds * 1000).rounded() / 1000, requests: tally.requests,
            rowsPerSecond: seconds > 0 ? (Double(tally.finished) / seconds * 10).rounded() / 10 : 0,
            assigned: assigned, rejected: rejected, uncertain: uncertain, failed: failed,
            retryLeft: retryLeft, pendingLeft: pendingLeft, recovered: recovered,
            rateLimited: tally.rateLimited, pauses: pauses, untrustedReplies: tally.untrusted,
            stopReason: stopReason, exitStatus: status.rawValue, quotaReopensAt: stops.quotaReopensAt)
    }
}
