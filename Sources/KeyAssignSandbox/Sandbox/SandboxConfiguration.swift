import KeyAssign

/// Everything a sandbox license server needs to start: where it listens, where it keeps its
/// state, which license keys it knows, and which faults it injects.
public struct SandboxConfiguration: Sendable {
    /// Where the server's license keys come from.
    public enum Inventory: Sendable, Equatable {
        /// One key per line; blank lines and lines starting with `#` are skipped.
        case file(String)
        /// `count` random UUIDs written to `DIR/keys.txt`. An existing `DIR/keys.txt` is reused,
        /// so that a restarted sandbox keeps the inventory its assignments refer to.
        case generate(Int)
        case keys([String])
    }

    /// How long each reply is held back, without blocking the event loop.
    public enum Latency: Sendable, Equatable {
        case none
        case fixed(milliseconds: Int)
        case range(minMilliseconds: Int, maxMilliseconds: Int)

        /// For messages, before the word "latency": `no`, `5 ms`, `5–40 ms`.
        public var text: String {
            switch self {
            case .none: "no"
            case .fixed(let milliseconds): "\(milliseconds) ms"
            case .range(let low, let high): "\(low)–\(high) ms"
            }
        }

        /// Parses `MS` or `MIN-MAX` (milliseconds).
        public static func parse(_ text: String) throws -> Latency {
            func number(_ part: Substring) throws -> Int {
                guard let value = Int(part.trimmingWhitespace()), value >= 0 else {
                    throw KeyAssignError(
                        .usage, "latency \"\(text)\": expected MS or MIN-MAX in whole milliseconds, 0 or more")
                }
                return value
            }
            let parts = text.split(separator: "-", omittingEmptySubsequences: false)
            switch parts.count {
            case 1:
                let ms = try number(parts[0])
                return ms == 0 ? .none : .fixed(milliseconds: ms)
            case 2:
                let low = try number(parts[0])
                let high = try number(parts[1])
                guard low <= high else {
                    throw KeyAssignError(.usage, "latency \"\(text)\": MIN must not exceed MAX")
                }
                return .range(minMilliseconds: low, maxMilliseconds: high)
            default:
                throw KeyAssignError(.usage, "latency \"\(text)\": expected MS or MIN-MAX in whole milliseconds")
            }
        }
    }

    /// Probabilities (0…1) of each fault, decided per request by a seeded generator so that a
    /// run with the same seed and the same request order injects the same faults.
    public struct Faults: Sendable, Equatable {
        public var latency: Latency = .none
        /// 503 without processing the request.
        public var fail5xx: Double = 0
        /// 429 without processing the request (not counted as server-side rate limiting).
        public var fail429: Double = 0
        /// Close the connection without processing the request.
        public var dropBefore: Double = 0
        /// Process the request (assigning the key), then close the connection without replying.
        public var dropAfter: Double = 0
        /// A valid reply whose signature has one bit flipped.
        public var badSignature: Double = 0
        /// A properly signed reply whose timestamp is one hour old.
        public var stale: Double = 0
        /// A properly signed reply whose code is a JSON string (`"code":"800"`), as PHP
        /// writes a code that came from a string.
        public var stringCode: Double = 0
        /// A 500 HTML debug page echoing the request's headers and body (the API key
        /// included), without processing the request: what a PHP or Laravel server in debug
        /// mode sends when it fails.
        public var echoError: Double = 0
        /// Process the request (assigning the key), then answer with a properly signed reply
        /// whose code the protocol does not document (899) instead of 800 or 801.
        public var undocumentedCode: Double = 0
        /// The `Retry-After` of an injected 429 (`fail429`), in seconds; nil sends none, nor a
        /// `retry_after` body field.
        public var retryAfter429: Int? = 1
        /// A web application firewall in front of the server: a request whose owner_name or
        /// email matches this regular expression (case-insensitive; `.*` matches every request)
        /// gets an unsigned 403 HTML page and is not processed.
        public var wafBlock: String?
        /// Process the request (assigning the key), then hold the signed reply back for
        /// `lateReplyMilliseconds` more: a server that assigns and answers after the client's
        /// timeout (a PHP server under load, a slow database).
        public var lateReply: Double = 0
        public var lateReplyMilliseconds = 0
        /// Hold the key listing back this long before answering (a slow or hanging listing).
        public var listingDelayMilliseconds = 0
        /// The share (0…1) of keys the listing leaves out, the same keys every time: a listing
        /// scoped to one product, paginated, or cut short by a proxy.
        public var listingOmit: Double = 0
        /// nil: a seed is drawn at random (and reported by `SandboxServer.seed`).
        public var seed: UInt64?

        public init() {}

        func validate() throws {
            let named: [(String, Double)] = [
                ("fail-5xx", fail5xx), ("fail-429", fail429), ("drop-before", dropBefore),
                ("drop-after", dropAfter), ("bad-signature", badSignature), ("stale", stale),
                ("string-code", stringCode), ("echo-error", echoError), ("undocumented-code", undocumentedCode),
                ("late-reply", lateReply), ("listing-omit", listingOmit),
            ]
            for (name, value) in named where !(value >= 0 && value <= 1) {
                throw KeyAssignError(.usage, "\(name) \(value): a probability must be between 0 and 1")
            }
            if lateReplyMilliseconds < 0 || listingDelayMilliseconds < 0 {
                throw KeyAssignError(.usage, "late-reply-delay and listing-delay: must be 0 or more milliseconds")
            }
            if let retryAfter429, retryAfter429 < 0 {
                throw KeyAssignError(.usage, "retry-after \(retryAfter429): must be 0 or more seconds, or none")
            }
            if let wafBlock {
                _ = try WAFRule(pattern: wafBlock)
            }
        }
    }

    /// Server-side token bucket: `rate` requests per second, bursts of up to `burst`.
    public struct RateLimit: Sendable, Equatable {
        public var rate: Double
        public var burst: Int

        public init(rate: Double, burst: Int) {
            self.rate = rate
            self.burst = burst
        }
    }

    /// How the sandbox answers `GET /api/v1/get-license-keys`.
    public enum ListingMode: String, Sendable, CaseIterable {
        /// The real state, signed with the global key.
        case signed
        /// The same listing with one bit of its signature flipped (a forged listing).
        case forged
        /// 404, like a server without the endpoint.
        case absent
        /// Hostile listings (`SandboxHostileListing`): a 500 debug page echoing the request,
        /// the `Authorization` header (the API key, also in base64 and hex) included.
        case echoError = "echo-error"
        /// A properly signed listing whose `private_key_used` holds the API key.
        case keyInKeyName = "key-in-key-name"
        /// A listing signed by the state directory's key under the name `product`.
        case product
        /// An envelope whose member name, given twice, holds ESC, BEL, newline and tab.
        case duplicateMember = "duplicate-member"
    }

    /// A key sold before the sandbox started, to someone: `--preassigned FILE` lines
    /// `key,owner_name,email`.
    public struct Preassigned: Sendable, Equatable {
        public var licenseKey: String
        public var ownerName: String?
        public var email: String?

        public init(licenseKey: String, ownerName: String?, email: String?) {
            self.licenseKey = licenseKey
            self.ownerName = ownerName
            self.email = email
        }
    }

    public var host: String = "127.0.0.1"
    /// 0: any free port (read it back from `SandboxServer.port` or `DIR/port`).
    public var port: Int = 0
    public var stateDirectory: String
    public var inventory: Inventory
    /// A file holding the API key; nil: reuse `DIR/api-key`, or generate one there.
    public var apiKeyFile: String?
    public var rateLimit: RateLimit?
    /// Fixed-window quotas, as Laravel's throttle keeps them (`SandboxQuotas`): `--quota 30/hour`.
    public var quotas: [KeyAssign.RateLimit] = []
    public var faults = Faults()
    public var listing: ListingMode = .signed
    /// Added to the inventory and assigned at start (kept if already assigned).
    public var preassigned: [Preassigned] = []
    /// Size of a newly generated signing key. The published examples use 2048 bits.
    public var keyBits: Int = 2048
    /// What replies say in `private_key_used`: `global` (the server-wide key), or `product`
    /// to act as a product with its own key pair (the state directory's key signs either way).
    public var keyName: String = "global"
    /// Write `/` as `\/` in reply JSON, as PHP's `json_encode` does by default.
    public var escapesSlashes = true
    /// Sign every reply afresh instead of reusing the signature of an identical signed text
    /// (only for measuring what the cache saves).
    public var cachesSignatures = true
    /// Signed messages carry ESC, BEL, newline and tab (`SandboxHostileText`): a hostile server
    /// trying to drive the client's terminal or forge lines in its log.
    public var hostileText = false
    /// Event loop threads; nil: one per core.
    public var threads: Int?

    public init(stateDirectory: String, inventory: Inventory) {
        self.stateDirectory = stateDirectory
        self.inventory = inventory
    }

    func validate() throws {
        try faults.validate()
        guard (0...65535).contains(port) else {
            throw KeyAssignError(.usage, "port \(port): must be between 0 and 65535")
        }
        if let rateLimit {
            guard rateLimit.rate > 0, rateLimit.rate.isFinite, rateLimit.burst >= 1 else {
                throw KeyAssignError(.usage, "rate limit: rate must be above 0 and burst at least 1")
            }
        }
        for quota in quotas where quota.count < 1 || !KeyAssign.RateLimit.windowRange.contains(quota.window) {
            throw KeyAssignError(
                .usage, "quota \(quota): the count must be at least 1 and the window from 1 ms to 31 days")
        }
        if case .generate(let count) = inventory, count < 0 {
            throw KeyAssignError(.usage, "generate-keys \(count): must be 0 or more")
        }
        guard !keyName.isEmpty,
            keyName.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") })
        else {
            throw KeyAssignError(
                .usage,
                "key name \"\(keyName)\": expected printable ASCII without spaces or quotes, e.g. global or product")
        }
        if let threads, threads < 1 {
            throw KeyAssignError(.usage, "threads \(threads): must be at least 1")
        }
    }
}
