/// The accepted range of every numeric flag of every command, in one place: the commands
/// check their values against these in `validate()` (before a lock is taken or a database is
/// opened), `RunOptions.validate()` checks an embedding program's values against the same,
/// and `--help` and the README quote `text`.
///
/// Why bounds on top and not only "finite, ≥ 0": a value like `--timeout 1e300` is finite
/// but overflows the integer milliseconds libcurl takes, and `--backoff-cap 1e308` makes a
/// jittered delay that no `Date` can hold. Every upper bound is far above any sensible
/// setting and far below what the code downstream can represent.
public struct FlagRange: Sendable, Equatable {
    public let flag: String
    public let lower: Double
    public let upper: Double
    /// Words after the numbers in a message: "seconds", "requests per second".
    public let unit: String
    /// Whole numbers only (the flag is parsed as an integer).
    public let integral: Bool

    public init(_ flag: String, _ lower: Double, _ upper: Double, unit: String = "", integral: Bool = false) {
        self.flag = flag
        self.lower = lower
        self.upper = upper
        self.unit = unit
        self.integral = integral
    }

    /// "0.001 to 86400 seconds"
    public var text: String {
        "\(Self.format(lower)) to \(Self.format(upper))" + (unit.isEmpty ? "" : " \(unit)")
    }

    /// Why `value` is refused, or nil. NaN and infinities are never in range.
    public func problem(_ value: Double) -> String? {
        if value.isFinite && value >= lower && value <= upper && (!integral || value.rounded() == value) { return nil }
        let kind = integral ? "a whole number" : "a finite number"
        return "\(flag) \(Self.format(value)): must be \(kind) from \(text)"
    }

    public func problem(_ value: Int) -> String? { problem(Double(value)) }

    /// Throws the usage error (exit 64) for a value out of range.
    public func check(_ value: Double) throws {
        if let problem = problem(value) { throw KeyAssignError(.usage, problem) }
    }

    public func check(_ value: Int) throws { try check(Double(value)) }

    private static func format(_ value: Double) -> String {
        if value.isFinite && value.rounded() == value && abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}

extension FlagRange {
    // run and sync
    public static let rate = FlagRange("--rate", 0, 1_000_000, unit: "requests per second (0 = unlimited)")
    public static let burst = FlagRange("--burst", 1, 1_000_000, integral: true)
    public static let concurrency = FlagRange("--concurrency", 1, 1024, integral: true)
    public static let maxAttempts = FlagRange("--max-attempts", 1, 1000, integral: true)
    public static let timeout = FlagRange("--timeout", 0.001, 86_400, unit: "seconds")
    public static let maxClockSkew = FlagRange("--max-clock-skew", 0.001, 86_400, unit: "seconds")
    public static let maxWait = FlagRange("--max-wait", 0, 86_400, unit: "seconds")
    public static let backoffBase = FlagRange("--backoff-base", 0, 86_400, unit: "seconds")
    public static let backoffCap = FlagRange("--backoff-cap", 0, 86_400, unit: "seconds")
    // run, sync and reconcile: SQLite and libcurl count a listing's bytes in 32 bits
    public static let listingTimeout = FlagRange("--listing-timeout", 1, 86_400, unit: "seconds")
    public static let maxListingBytes = FlagRange(
        "--max-listing-bytes", 1024, 2_147_483_647, unit: "bytes", integral: true)
    // import and sync
    public static let settle = FlagRange("--settle", 0, 86_400, unit: "seconds")
    // import
    public static let lockWait = FlagRange("--wait", 0, 86_400, unit: "seconds")
    // verify
    public static let maxAge = FlagRange("--max-age", 0, 315_360_000, unit: "seconds")
    public static let keepEvidence = FlagRange("--keep-evidence", 0, 36_500, unit: "days")
    // sandbox
    public static let port = FlagRange("--port", 0, 65_535, integral: true)
    public static let generateKeys = FlagRange("--generate-keys", 0, 10_000_000, integral: true)
    public static let sandboxRate = FlagRange("--rate", 0.001, 1_000_000, unit: "requests per second")
    public static let sandboxBurst = FlagRange("--burst", 1, 1_000_000, integral: true)
    public static let latency = FlagRange("--latency", 0, 600_000, unit: "milliseconds", integral: true)
    public static let lateReplyDelay = FlagRange(
        "--late-reply-delay", 0, 3_600_000, unit: "milliseconds", integral: true)
    public static let listingDelay = FlagRange("--listing-delay", 0, 3_600_000, unit: "milliseconds", integral: true)
    public static func probability(_ flag: String) -> FlagRange { FlagRange(flag, 0, 1) }
    public static let retryAfter = FlagRange("--retry-after", 0, 86_400, unit: "seconds", integral: true)
}
