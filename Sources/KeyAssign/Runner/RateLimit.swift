/// One quota as a server states it: at most `count` requests in any `window` seconds
/// (`--rate 10/min`, `--rate 500/day`, `--rate 20/10s`). `RateLimits` keeps every one of them.
public struct RateLimit: Sendable, Equatable, CustomStringConvertible {
    public var count: Int
    public var window: Double

    public init(count: Int, window: Double) {
        self.count = count
        self.window = window
    }

    /// The largest count and the range of windows accepted: a month is the longest quota a
    /// reseller meets, and a millisecond the shortest window a clock here can keep apart.
    public static let maxCount = 1_000_000_000
    public static let windowRange = 0.001...(31 * 86_400.0)

    /// What a `--rate` value says: a plain number is requests per second for the token
    /// bucket (`--burst`), as it always was; `N/WINDOW` is a quota.
    public enum Flag: Sendable, Equatable {
        case perSecond(Double)
        case quota(RateLimit)
    }

    /// Parses a `--rate` value: `R` (requests per second), or `N/UNIT` with an optional length
    /// before the unit: `10/min`, `100/hour`, `500/day`, `20/10s`, `1000/2h`. Units: s, sec,
    /// second(s), m, min, minute(s), h, hour(s), d, day(s). Throws a usage error naming the value.
    public static func parseFlag(_ text: String) throws -> Flag {
        let trimmed = text.trimmingWhitespace()
        guard trimmed.contains("/") else {
            guard let rate = Double(trimmed) else {
                throw KeyAssignError(
                    .usage,
                    "--rate \(text): expected requests per second (R) or a quota N/WINDOW, e.g. 10/min, 100/hour, 500/day, 20/10s"
                )
            }
            try FlagRange.rate.check(rate)
            return .perSecond(rate)
        }
        return .quota(try parseQuota(text, flag: "--rate"))
    }

    /// Parses `N/WINDOW` alone (the sandbox's `--quota`); `flag` names the option in messages.
    public static func parseQuota(_ original: String, flag: String) throws -> RateLimit {
        func refuse(_ why: String) -> KeyAssignError {
            KeyAssignError(.usage, "\(flag) \(original): \(why)")
        }
        let text = original.trimmingWhitespace()
        guard let slash = text.firstIndex(of: "/") else {
            throw refuse("expected N/WINDOW, e.g. 10/min, 100/hour, 500/day, 20/10s")
        }
        guard let count = Int(text[..<slash].trimmingWhitespace()) else {
            throw refuse("expected a whole number of requests before '/', e.g. 10/min")
        }
        guard count >= 1 && count <= maxCount else {
            throw refuse("the number of requests must be from 1 to \(maxCount)")
        }
        let window = text[text.index(after: slash)...].trimmingWhitespace().lowercased()
        let unitStart = window.firstIndex { !($0.isNumber || $0 == ".") } ?? window.endIndex
        let lengthText = window[..<unitStart]
        let unit = window[unitStart...]
        let length: Double
        if lengthText.isEmpty {
            length = 1
        } else {
            guard let value = Double(lengthText), value.isFinite, value > 0 else {
                throw refuse("bad window length '\(lengthText)'")
            }
            length = value
        }
        let seconds: Double
        switch unit {
        case "s", "sec", "secs", "second", "seconds": seconds = 1
        case "m", "min", "mins", "minute", "minutes": seconds = 60
        case "h", "hr", "hour", "hours": seconds = 3600
        case "d", "day", "days": seconds = 86_400
        default: throw refuse("unknown window unit '\(unit)'; use s, min, hour or day (e.g. 10/min, 20/10s)")
        }
        let total = length * seconds
        guard windowRange.contains(total) else {
            throw refuse("the window must be from 1 ms to 31 days")
        }
        return RateLimit(count: count, window: total)
    }

    /// `10/min`, `100/hour`, `500/day`, `20/10s`: what a person would type.
    public var description: String {
        for (seconds, unit) in [(86_400.0, "day"), (3600, "hour"), (60, "min")] where window == seconds {
            return "\(count)/\(unit)"
        }
        let text = window.rounded() == window ? String(Int64(window)) : String(window)
        return "\(count)/\(text)s"
    }
}
