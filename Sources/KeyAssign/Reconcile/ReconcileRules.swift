/// The reconcile rules (docs/states.md, "Reconcile"): what the server's signed key listing
/// proves about one row. Pure: no I/O, no clock; every input is a value.
public enum ReconcileRules {
    /// Which rule applied; stored in `settlements.rule`.
    public enum Rule: String, Sendable, CaseIterable {
        /// Listed with an owner whose email (trimmed, case-insensitive) is the row's.
        case heldByBuyer = "held_by_buyer"
        /// Listed with another owner.
        case heldByOther = "held_by_other"
        /// Listed as `available`, and the listing is late enough to prove it.
        case available
        /// Listed as `available`, but taken while an attempt could still be processed.
        case tooEarly = "too_early"
        /// Listed with another status and no owner (`suspended`, ...).
        case status
        /// Not in the listing.
        case unknown = "unknown_key"
    }

    /// The row as the rules see it.
    public struct Row: Sendable, Equatable {
        public var state: WorkState
        public var ownerName: String?
        public var email: String?
        public var attempts: Int
        /// Unix seconds; nil when the row has no attempt on record.
        public var lastAttemptStart: Double?
        public var lastReplyEnd: Double?
        /// The longest `--timeout` any of its attempts ran under.
        public var requestTimeout: Double

        public init(
            state: WorkState, ownerName: String?, email: String?, attempts: Int = 0,
            lastAttemptStart: Double? = nil, lastReplyEnd: Double? = nil, requestTimeout: Double = 30
        ) {
            self.state = state
            self.ownerName = ownerName
            self.email = email
            self.attempts = attempts
            self.lastAttemptStart = lastAttemptStart
            self.lastReplyEnd = lastReplyEnd
            self.requestTimeout = requestTimeout
        }
    }

    public struct Decision: Sendable, Equatable {
        public var rule: Rule
        /// The row's state afterwards (the same state when the listing only explains it).
        public var state: WorkState
        /// For `last_error`, `report`, `errors.csv` and `history`.
        public var reason: String
        /// False when the row must stay as it is for now (the race): not settled.
        public var settled: Bool
    }

    /// The states reconcile works on: `uncertain` and `rejected` by default, `retry` rows a dead
    /// run left (checked before they are sent again), and `assigned` rows (confirmed by key and
    /// email: what closes the replayed-800 gap, docs/signatures.md).
    public static let selectableStates: [WorkState] = [.uncertain, .rejected, .retry, .assigned]

    /// The reason an absent key gives a row that may have been delivered: absence proves nothing
    /// (a listing scoped to one product, paginated, or cut short by a proxy leaves keys out).
    public static let notListedReason =
        "not in the server's listing: absence proves nothing for a request that may have reached the server (a listing scoped to a product, paginated or cut short leaves keys out); a later listing settles it"

    /// What `entry` (nil: the key is not in the listing) proves about `row`, for a listing taken
    /// no earlier than `takenAt` (Unix seconds). `maxAttempts` is kept for the callers; an
    /// `uncertain` row whose key is available goes back to `retry` whatever its attempts,
    /// because --max-attempts bounds one run, not a row's lifetime.
    public static func decide(_ row: Row, entry: ListingEntry?, takenAt: Double, maxAttempts: Int) -> Decision {
        guard let entry else {
            switch row.state {
            case .uncertain, .retry:
                // Maybe delivered: never `rejected` on absence alone.
                return Decision(rule: .unknown, state: row.state, reason: notListedReason, settled: false)
            case .assigned:
                // Our verified 800 stands; a partial listing does not contradict it.
                return Decision(
                    rule: .unknown, state: .assigned,
                    reason:
                        "not in the server's listing: the verified 800 stands, unconfirmed", settled: false)
            default:
                return Decision(
                    rule: .unknown, state: .rejected,
                    reason: "unknown to the server: the key is not in its signed key listing", settled: true)
            }
        }
        let rule = ruleFor(row, entry: entry)
        if row.state == .assigned {
            return confirm(row, entry: entry, rule: rule, takenAt: takenAt)
        }
        switch rule {
        case .heldByBuyer:
            return Decision(
                rule: rule, state: .assigned,
                reason:
                    "the server's signed key listing shows this key held by this buyer (\(owner(entry)), assigned_at \(entry.assignedAt ?? "unknown"))",
                settled: true)
        case .heldByOther:
            return Decision(
                rule: rule, state: .rejected,
                reason:
                    "already assigned to another owner: \(owner(entry)), assigned_at \(entry.assignedAt ?? "unknown") (server's signed key listing)",
                settled: true)
        case .status:
            return Decision(
                rule: rule, state: .rejected,
                reason:
                    "the key's status on the server is \(entry.status.map { "'\($0)'" } ?? "missing"), with no owner (server's signed key listing)",
                settled: true)
        case .available, .tooEarly, .unknown:
            break
        }
        // Available: nobody holds it. That proves nothing about a request the server may
        // still process, so the listing must come after the last attempt could end.
        let provenAfter = provenAfter(row)
        switch row.state {
        case .rejected:
            return Decision(
                rule: .available, state: .rejected,
                reason:
                    "the server refused a key its signed key listing shows as available (nobody holds it); check the key and the server",
                settled: true)
        case .uncertain where takenAt > provenAfter:
            return Decision(
                rule: .available, state: .retry,
                reason:
                    "the server's signed key listing shows the key available (nobody holds it): sending it again cannot assign it twice",
                settled: true)
        case .retry where takenAt > provenAfter:
            return Decision(
                rule: .available, state: .retry,
                reason:
                    "the server's signed key listing shows the key available: it is sent again", settled: true)
        default:
            return tooEarly(row, provenAfter: provenAfter)
        }
    }

    /// An `assigned` row against the listing: the buyer holds the key (confirmed, nothing
    /// changes), or the listing contradicts our assignment. A contradiction is either a change
    /// on the server after our assignment (an admin's reassignment or release) or an 800 that
    /// was never ours (a replayed signed reply: its payload names no key).
    static func confirm(_ row: Row, entry: ListingEntry, rule: Rule, takenAt: Double) -> Decision {
        switch rule {
        case .heldByBuyer:
            return Decision(
                rule: rule, state: .assigned,
                reason:
                    "confirmed by the server's signed key listing: held by this buyer (\(owner(entry)), assigned_at \(entry.assignedAt ?? "unknown"))",
                settled: true)
        case .heldByOther:
            return Decision(
                rule: rule, state: .rejected,
                reason:
                    "changed after our assignment: the server's signed key listing shows it held by another owner, \(owner(entry)), assigned_at \(entry.assignedAt ?? "unknown") (an admin's reassignment, or the 800 we accepted was a replayed reply)",
                settled: true)
        case .status:
            return Decision(
                rule: rule, state: .rejected,
                reason:
                    "changed after our assignment: the key's status on the server is \(entry.status.map { "'\($0)'" } ?? "missing"), with no owner (server's signed key listing)",
                settled: true)
        case .available, .tooEarly, .unknown:
            let provenAfter = provenAfter(row)
            guard takenAt > provenAfter else { return tooEarly(row, provenAfter: provenAfter) }
            return Decision(
                rule: .available, state: .retry,
                reason:
                    "changed after our assignment: the server's signed key listing shows the key available (nobody holds it), so the 800 we recorded did not hold (a release on the server, or a replayed reply); it is sent again",
                settled: true)
        }
    }

    /// The listing proves a key available only if taken after the row's last attempt could
    /// still be processed, and after its last reply.
    static func provenAfter(_ row: Row) -> Double {
        max((row.lastAttemptStart ?? -Double.infinity) + row.requestTimeout, row.lastReplyEnd ?? -Double.infinity)
    }

    static func tooEarly(_ row: Row, provenAfter: Double) -> Decision {
        Decision(
            rule: .tooEarly, state: row.state,
            reason:
                "the signed key listing shows the key available, but it was taken before the last attempt could still be processed (until \(provenAfter.isFinite ? Timestamps.iso8601(provenAfter) : "later")); a later listing settles it",
            settled: false)
    }

    /// True when the decision contradicts a row recorded `assigned`.
    public static func contradicts(_ decision: Decision, from state: WorkState) -> Bool {
        state == .assigned && decision.settled && decision.state != .assigned
    }

    /// The state a settlement's entry leads to, ignoring time and attempts: what `audit`
    /// checks a settled row against. nil for `available` (it settles nothing final).
    public static func settledState(from: WorkState, entry: ListingEntry?, ownerName: String?, email: String?)
        -> WorkState?
    {
        guard let entry else {
            // Absence settles only a row that cannot have been delivered.
            switch from {
            case .uncertain, .retry, .assigned: return from
            default: return .rejected
            }
        }
        let rule = ruleFor(Row(state: from, ownerName: ownerName, email: email), entry: entry)
        switch rule {
        case .heldByBuyer: return .assigned
        case .heldByOther, .status: return .rejected
        case .unknown: return .rejected
        case .available, .tooEarly: return from == .rejected ? .rejected : nil
        }
    }

    static func ruleFor(_ row: Row, entry: ListingEntry) -> Rule {
        if normalized(entry.status) == "available" { return .available }
        let listedEmail = normalized(entry.ownerEmail)
        let listedName = normalized(entry.ownerName)
        if listedEmail == nil && listedName == nil { return .status }
        if let listedEmail {
            return listedEmail == normalized(row.email) ? .heldByBuyer : .heldByOther
        }
        // Neither the listing nor the row has an email (it is optional): the names decide.
        if normalized(row.email) == nil, let listedName, listedName == normalized(row.ownerName) { return .heldByBuyer }
        return .heldByOther
    }

    /// Trimmed and lower-cased; nil when empty.
    static func normalized(_ text: String?) -> String? {
        guard let text else { return nil }
        let trimmed = text.trimmingWhitespace().lowercased()
        return trimmed.isEmpty ? nil : trimmed
    }

    static func owner(_ entry: ListingEntry) -> String {
        let email = entry.ownerEmail?.trimmingWhitespace()
        let name = entry.ownerName?.trimmingWhitespace()
        switch (name?.isEmpty == false ? name : nil, email?.isEmpty == false ? email : nil) {
        case (let name?, let email?): return "\(name) <\(email)>"
        case (nil, let email?): return "<\(email)>"
        case (let name?, nil): return name
        default: return "(unnamed owner)"
        }
    }
}
