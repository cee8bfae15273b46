/// Laravel's throttle headers of one reply: `X-RateLimit-Limit` (requests per window),
/// `X-RateLimit-Remaining` (left in the current window) and `X-RateLimit-Reset` (when it ends).
/// Laravel sends the first two on every throttled route and Reset with its 429; a server may
/// send all three every time (the sandbox does).
public struct RateLimitHeaders: Sendable, Equatable {
    public var limit: Int?
    public var remaining: Int?
    /// Unix seconds.
    public var reset: Double?

    public init(limit: Int?, remaining: Int?, reset: Double?) {
        self.limit = limit
        self.remaining = remaining
        self.reset = reset
    }

    /// From the headers' raw values (nil or empty when absent); nil when none is usable.
    /// A Reset below 10⁹ is taken as seconds from `now` (the IETF draft's `RateLimit-Reset`
    /// and some gateways), anything larger as a Unix time (Laravel, GitHub).
    public init?(limit: String?, remaining: String?, reset: String?, now: Double) {
        func integer(_ text: String?) -> Int? {
            guard let text, let value = Int(text.trimmingWhitespace()), value >= 0 else { return nil }
            return value
        }
        self.limit = integer(limit)
        self.remaining = integer(remaining)
        if let text = reset, let value = Double(text.trimmingWhitespace()), value.isFinite, value >= 0 {
            self.reset = value < 1e9 ? now + value : value
        } else {
            self.reset = nil
        }
        if self.limit == nil && self.remaining == nil && self.reset == nil { return nil }
    }
}
