import KeyAssign

/// Quotas in fixed windows, as Laravel's throttle keeps them: a window opens at the first
/// request after the last one expired and lasts its length; a request counts in every window
/// if all of them have room, and none if any is full (a refused request is not counted). A
/// full window answers 429 with `Retry-After` (whole seconds until the longest-full window
/// expires). Every reply carries `X-RateLimit-Limit`, `-Remaining` and `-Reset` (Unix seconds)
/// of the tightest window. (Laravel itself sends Reset only with its 429; sending it always
/// lets a client keep to Remaining without a refusal.)
/// Not thread-safe: the service calls it under its state lock.
struct SandboxQuotas {
    private struct Window {
        let limit: RateLimit
        var opensAt: Double?
        var hits = 0

        var expiresAt: Double? { opensAt.map { $0 + limit.window } }
    }

    /// What one request gets: nil `retryAfter` when it may go ahead.
    struct Decision {
        var retryAfter: Int?
        var headers: [(String, String)]
    }

    private var windows: [Window]

    init(_ limits: [RateLimit]) {
        windows = limits.map { Window(limit: $0) }
    }

    var isEmpty: Bool { windows.isEmpty }

    /// Counts a request arriving at `now` (Unix seconds), if every window has room.
    mutating func take(now: Double) -> Decision {
        for index in windows.indices {
            if let expires = windows[index].expiresAt, now >= expires {
                windows[index].opensAt = nil
                windows[index].hits = 0
            }
        }
        let full = windows.filter { $0.hits >= $0.limit.count }
        if let longest = full.max(by: { ($0.expiresAt ?? now) < ($1.expiresAt ?? now) }) {
            let expires = longest.expiresAt ?? now
            let retryAfter = max(1, Int((expires - now).rounded(.up)))
            return Decision(retryAfter: retryAfter, headers: Self.headers(longest, now: now))
        }
        for index in windows.indices {
            if windows[index].opensAt == nil { windows[index].opensAt = now }
            windows[index].hits += 1
        }
        // The tightest window: fewest left, then the one that stays closed longest.
        let tightest = windows.min { a, b in
            let left = (a.limit.count - a.hits, b.limit.count - b.hits)
            return left.0 != left.1 ? left.0 < left.1 : (a.expiresAt ?? now) > (b.expiresAt ?? now)
        }
        return Decision(retryAfter: nil, headers: tightest.map { Self.headers($0, now: now) } ?? [])
    }

    private static func headers(_ window: Window, now: Double) -> [(String, String)] {
        let reset = Int64((window.expiresAt ?? now + window.limit.window).rounded(.up))
        return [
            ("X-RateLimit-Limit", String(window.limit.count)),
            ("X-RateLimit-Remaining", String(max(0, window.limit.count - window.hits))),
            ("X-RateLimit-Reset", String(reset)),
        ]
    }
}
