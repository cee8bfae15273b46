import Foundation

/// Stops a run that cannot succeed because of its configuration, after a handful of replies,
/// instead of spending the night on it (docs/states.md, "Stopping early"):
/// - replies that fail signature verification the same way: a wrong `--public-key`;
/// - replies that are stale: a local clock far from the server's (no NTP);
/// - HTTP 404 or 405, or an HTML page instead of JSON: no license server at `--server`.
///
/// Only while nothing has verified: one verified reply proves the key, the clock and the URL
/// right, and from then on each failure is its own reply's (a flipped bit, a proxy's page).
/// Pure: fed with each classified outcome, it answers proceed, hold or stop; the runner does
/// the rest (`EarlyStopGate`).
public struct EarlyStop: Sendable {
    /// What one reply says about the configuration.
    public enum Observation: Sendable, Equatable {
        /// A reply that verified: key, clock and URL are right.
        case verified
        /// Says nothing about the configuration (a 5xx, a timeout, a 429, a payload problem).
        case neutral
        /// The signature did not verify (bad signature, unknown key, unsigned, ...).
        case signature(UntrustedReason)
        /// Stale: `offset` is the local clock minus the server's signed timestamp, in seconds.
        case stale(offset: Double)
        /// No license server: what came back instead (`HTTP 404`, `an HTML page (HTTP 200)`).
        case wrongServer(String)
    }

    public enum Kind: Sendable, Equatable {
        case signature, freshness, wrongServer
    }

    public enum Verdict: Sendable, Equatable {
        case proceed
        /// A wrong-server reply while nothing verified: its row waits for the decision.
        case hold
        /// Stop the run. `first` is true the first time (the message is then new).
        case stop(Kind, first: Bool)
    }

    /// "A handful": enough that one odd reply does not stop a night, few enough to cost nothing.
    public static let threshold = 5

    public let threshold: Int
    public private(set) var verified = false
    public private(set) var stopped: Kind?
    private var streakKind: Kind?
    public private(set) var streak = 0
    private var reasons: [String] = []
    private var offsets: [Double] = []

    public init(threshold: Int = EarlyStop.threshold) {
        self.threshold = max(1, threshold)
    }

    public mutating func observe(_ observation: Observation) -> Verdict {
        let kind: Kind
        var reason: String?
        var offset: Double?
        switch observation {
        case .verified:
            verified = true
            streak = 0
            return .proceed
        case .neutral:
            return .proceed
        case .signature(let why):
            kind = .signature
            reason = why.rawValue
        case .stale(let seconds):
            kind = .freshness
            offset = seconds
        case .wrongServer(let what):
            kind = .wrongServer
            reason = what
        }
        if let stopped {
            return kind == stopped ? .stop(kind, first: false) : .proceed
        }
        if verified { return .proceed }
        if kind != streakKind {
            // "In a row, the same way": another kind of failure starts the count again.
            streakKind = kind
            streak = 0
            reasons = []
            offsets = []
        }
        if let reason, !reasons.contains(reason) { reasons.append(reason) }
        if let offset { offsets.append(offset) }
        streak += 1
        if streak >= threshold {
            stopped = kind
            return .stop(kind, first: true)
        }
        return kind == .wrongServer ? .hold : .proceed
    }

    /// The median offset of the stale replies seen, local clock minus signed timestamp.
    public var measuredOffset: Double? {
        guard !offsets.isEmpty else { return nil }
        let sorted = offsets.sorted()
        return sorted[sorted.count / 2]
    }

    /// What the person reading cron mail needs, for a stop of `kind`.
    public func message(_ kind: Kind, count: Int? = nil, keys: [SigningKey], maxClockSkew: Double?, url: String)
        -> String
    {
        let count = count ?? streak
        switch kind {
        case .signature:
            return Self.signatureMessage(what: "\(count) replies in a row", reasons: reasons, keys: keys)
        case .freshness:
            return Self.freshnessMessage(
                what: "\(count) replies in a row", offset: measuredOffset, maxClockSkew: maxClockSkew)
        case .wrongServer:
            return
                "\(count) request\(count == 1 ? "" : "s") in a row to \(url) got \(reasons.joined(separator: " or ")) and nothing verified: no assign-license-key endpoint answers at this URL. Check --server (the server's base URL, its …/api/v1, or the endpoint URL); the rows are left pending, since no license server processed them"
        }
    }

    /// Shared with the listing (`RunReconciliation`, `ReconcileJob`): the same words for the same cause.
    /// `detail`: the verifier's own words for a listing (which key name it was signed with),
    /// already redacted, so a key refused for its name is not mistaken for a wrong key.
    public static func signatureMessage(what: String, reasons: [String], keys: [SigningKey], detail: String? = nil)
        -> String
    {
        let have =
            keys.isEmpty
            ? "none"
            : keys.map { "\($0.name) \($0.fingerprint)" + ($0.file.map { " (\($0))" } ?? "") }.joined(separator: ", ")
        let why = reasons.joined(separator: ", ") + (detail.map { ": " + $0 } ?? "")
        return
            "\(what) failed signature verification (\(why)) and nothing verified: the server signs with another key than --public-key gives. Check --public-key: keyassign has \(have). Rows already sent may have been assigned; they are left uncertain, and reconciliation settles them once the key is right"
    }

    public static func freshnessMessage(what: String, offset: Double?, maxClockSkew: Double?) -> String {
        var text = "\(what) were stale and nothing verified"
        if let offset {
            let seconds = Int(offset.magnitude.rounded())
            text +=
                ": the local clock is \(seconds) s \(offset >= 0 ? "ahead of" : "behind") the server's signed timestamps"
        }
        if let maxClockSkew { text += " (--max-clock-skew \(Int(maxClockSkew)) s)" }
        return text
            + ". Check NTP, or --max-clock-skew. Rows already sent may have been assigned; they are left uncertain, and reconciliation settles them once the clock is right"
    }

    /// What one reply says about the configuration. `now`: when it arrived (Unix seconds).
    public static func observation(_ result: TransportResult, verdict: ReplyVerdict?, now: Double) -> Observation {
        guard case .response(let status, _, let body, _) = result else { return .neutral }
        if case .trusted? = verdict { return .verified }
        if status == 404 || status == 405 { return .wrongServer("HTTP \(status)") }
        if case .untrusted(let reason, let detail)? = verdict {
            if reason == .envelopeNotJSON && (200...299).contains(status) && looksLikeHTML(body) {
                return .wrongServer("an HTML page instead of JSON (HTTP \(status))")
            }
            if reason == .stale {
                return signedAt(detail).map { .stale(offset: now - $0) } ?? .stale(offset: 0)
            }
            if reason.isSignatureProblem && reason != .envelopeNotJSON && reason != .envelopeMissingFields {
                return .signature(reason)
            }
        }
        return .neutral
    }

    /// The signed timestamp a stale verdict names ("signed at 1733380000, …").
    public static func signedAt(_ detail: String) -> Double? {
        guard let range = detail.range(of: "signed at ") else { return nil }
        let digits = detail[range.upperBound...].prefix { $0 == "-" || $0.isNumber }
        return Double(digits)
    }

    static func looksLikeHTML(_ body: [UInt8]) -> Bool {
        guard
            let first = body.first(where: {
                $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 && $0 != 0xEF && $0 != 0xBB && $0 != 0xBF
            })
        else {
            return false
        }
        return first == UInt8(ascii: "<")
    }
}
