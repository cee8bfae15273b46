/// What the sandbox saw and did, for tests and for people checking a run against the server's
/// side of the story. Served as JSON at `GET /__sandbox/ledger`.
public struct SandboxLedger: Codable, Sendable, Equatable {
    public struct KeyEntry: Codable, Sendable, Equatable {
        /// Assign requests naming this key that arrived, whatever became of them
        /// (faults and the rate limiter included).
        public var requests: Int = 0
        public var assigned: Bool = false
        public var assignedAt: String?
        public var ownerName: String?
        public var email: String?
        /// Requests that arrived when the key was already assigned: a client that resends
        /// after an unknown outcome shows up here.
        public var requestsAfterAssignment: Int = 0
        /// `Idempotency-Key` header values seen, in arrival order. Recorded only: the real
        /// server's support is unconfirmed, so the sandbox does not act on them.
        public var idempotencyKeys: [String] = []

        public init() {}

        enum CodingKeys: String, CodingKey {
            case requests, assigned, email
            case assignedAt = "assigned_at"
            case ownerName = "owner_name"
            case requestsAfterAssignment = "requests_after_assignment"
            case idempotencyKeys = "idempotency_keys"
        }

        /// Written out even when nil (as null), so every entry has the same fields.
        public func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(requests, forKey: .requests)
            try container.encode(assigned, forKey: .assigned)
            try container.encode(assignedAt, forKey: .assignedAt)
            try container.encode(ownerName, forKey: .ownerName)
            try container.encode(email, forKey: .email)
            try container.encode(requestsAfterAssignment, forKey: .requestsAfterAssignment)
            try container.encode(idempotencyKeys, forKey: .idempotencyKeys)
        }
    }

    public struct Totals: Codable, Sendable, Equatable {
        /// Every `POST /api/v1/assign-license-key` received.
        public var requests: Int = 0
        /// Keys assigned by requests (not by `preassign`).
        public var assigned: Int = 0
        /// Signed replies sent, by code ("800", "801", "100").
        public var repliesByCode: [String: Int] = [:]

        enum CodingKeys: String, CodingKey {
            case requests, assigned
            case repliesByCode = "replies_by_code"
        }
    }

    public struct FaultCounts: Codable, Sendable, Equatable {
        public var latency = 0
        public var fail5xx = 0
        public var fail429 = 0
        public var dropBefore = 0
        public var dropAfter = 0
        public var badSignature = 0
        public var stale = 0
        public var stringCode = 0
        public var echoError = 0
        /// Unsigned 403 pages sent by the `wafBlock` rule (the request was not processed).
        public var wafBlocked = 0
        /// Signed replies with an undocumented code, sent after processing the request.
        public var undocumentedCode = 0
        /// Signed replies held back by `lateReply` after the key was processed.
        public var lateReply = 0
        /// Listings that left keys out (`listingOmit`), and how many keys they left out in all.
        public var partialListings = 0
        public var keysOmitted = 0

        enum CodingKeys: String, CodingKey {
            case latency
            case fail5xx = "fail_5xx"
            case fail429 = "fail_429"
            case dropBefore = "drop_before"
            case dropAfter = "drop_after"
            case badSignature = "bad_signature"
            case stale
            case stringCode = "string_code"
            case echoError = "echo_error"
            case wafBlocked = "waf_blocked"
            case undocumentedCode = "undocumented_code"
            case lateReply = "late_reply"
            case partialListings = "partial_listings"
            case keysOmitted = "keys_omitted"
        }
    }

    /// Keys that were requested or are assigned (untouched inventory keys are left out).
    public var keys: [String: KeyEntry] = [:]
    public var totals = Totals()
    public var faults = FaultCounts()
    /// 429s sent by the server-side rate limiter (injected 429s are in `faults`).
    public var rateLimited = 0
    /// Requests for the key listing (`GET /api/v1/get-license-keys`), answered or not; they
    /// are not in `totals.requests`, which counts assign calls only.
    public var listingRequests = 0

    enum CodingKeys: String, CodingKey {
        case keys, totals, faults
        case rateLimited = "rate_limited"
        case listingRequests = "listing_requests"
    }

    public init() {}
}
