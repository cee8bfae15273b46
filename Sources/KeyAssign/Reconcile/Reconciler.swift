/// The I/O around `ReconcileRules`: fetch the server's key listing once, verify it, keep it as
/// evidence, and walk the selected rows of the work table against it, in batches, so that
/// memory grows with the listing and never with the table. Used by `keyassign reconcile` and
/// by `run`/`sync` (`RunReconciliation`).
public struct Reconciler: Sendable {
    /// Why there is no listing to reconcile with.
    public enum Unavailable: Error, Sendable, Equatable {
        /// 404: the server has no `get-license-keys`.
        case notFound
        case tooLarge(limit: Int)
        case untrusted(UntrustedReason, String)
        /// Signed, but not the listing (code other than 730).
        case notListing(code: Int, message: String)
        case failed(String)
        /// Signed, but the payload holds the API key (in any spelling or encoding): a
        /// compromised server's listing, refused so that the key is neither stored nor shown.
        case carriesKey

        /// For a run these are the server's shape, not a fault: one warning, today's behaviour.
        public var isExpected: Bool {
            switch self {
            case .notFound, .tooLarge: true
            default: false
            }
        }

        /// The same, with the API key taken out of every text from the server.
        func redacted(_ redactor: SecretRedactor?) -> Unavailable {
            guard let redactor else { return self }
            switch self {
            case .notFound, .tooLarge, .carriesKey: return self
            case .untrusted(let reason, let detail): return .untrusted(reason, redactor.redact(detail))
            case .notListing(let code, let message): return .notListing(code: code, message: redactor.redact(message))
            case .failed(let detail): return .failed(redactor.redact(detail))
            }
        }

        public var message: String {
            switch self {
            case .notFound:
                return "the server has no key listing (GET \(ServerEndpoint.listingPath) answered 404)"
            case .tooLarge(let limit):
                return "the key listing is larger than --max-listing-bytes (\(limit) bytes); raise it to reconcile"
            case .untrusted(let reason, let detail):
                return "the key listing does not verify (\(reason.rawValue)): \(TerminalText.escape(detail))"
            case .notListing(let code, let message):
                return
                    "the signed reply to GET \(ServerEndpoint.listingPath) is code \(code) (\(ReplyVerifier.printable(message))), not 730 (License keys)"
            case .failed(let detail):
                return "cannot fetch the key listing: \(TerminalText.escape(detail))"
            case .carriesKey:
                return
                    "the signed key listing holds the API key; it is refused, not stored (is the server compromised?)"
            }
        }
    }

    /// A verified listing and what it came from. The envelope itself is not kept: once
    /// verified, its signed payload (in `listing.index`) and signature are the evidence, and
    /// the envelope's other half, the unsigned `response` copy, only repeats the payload.
    public struct Fetched: Sendable {
        public let listing: VerifiedListing
        /// The envelope's size as received.
        public let bytes: Int
        /// Local time the request started.
        public let fetchedAt: Double
        /// Local times the last byte arrived and the verification ended: what each step took,
        /// for the log.
        public let receivedAt: Double
        public let verifiedAt: Double

        /// The listing was taken no earlier than this: the request's start, or the signed
        /// timestamp when that is earlier (a clock behind ours, or a replayed listing).
        public var takenAt: Double { min(fetchedAt, Double(listing.timestamp)) }
    }

    /// Which rows to walk.
    public enum Selection: Sendable {
        /// `reconcile --state`: rejected rows already explained by a listing are skipped.
        case states([WorkState])
        /// Rows waiting to be sent again whose earlier attempt may have reached the server.
        case maybeDeliveredRetries
        /// The start of a run: every `uncertain` row (whichever run left it) and the rows a dead
        /// run left, before anything is sent.
        case startOfRun
        /// The end of a run: every `uncertain` row, the rows this run rejected, and the rows it
        /// assigned (confirmed by key and email, with no extra fetch).
        case endOfRun(runID: Int64)
    }

    public struct Change: Sendable, Equatable {
        public var licenseKey: String
        public var from: WorkState
        public var decision: ReconcileRules.Decision
        /// The row was written (state, reason or both); false for a dry run and for rows the
        /// listing leaves as they are.
        public var written: Bool
    }

    public struct Counts: Sendable, Equatable {
        public var selected = 0
        /// Rows the listing settled or explained.
        public var settled = 0
        /// Rows it could not settle yet (the race, or a maybe-delivered key the listing leaves out).
        public var unsettled = 0
        /// `assigned` rows the listing contradicts (moved to `retry` or `rejected`).
        public var contradicted = 0
        public var byRule: [String: Int] = [:]
        public var toState: [String: Int] = [:]
    }

    public var client: ListingClient
    public var verifier: ListingVerifier
    public var maxClockSkew: Double

    public init(client: ListingClient, verifier: ListingVerifier, maxClockSkew: Double) {
        self.client = client
        self.verifier = verifier
        self.maxClockSkew = maxClockSkew
    }

    /// One GET, verified. Throws only for a configuration error (libcurl missing). Every text
    /// the server chose (an error page, a key name, a message, a member name) reaches the
    /// `Unavailable` message with the API key taken out, whatever its spelling.
    public func fetch() throws -> Result<Fetched, Unavailable> {
        var waited = 0.0
        return try fetch(waited: &waited)
    }

    /// `fetch()`, also saying how long the server took to begin answering (`ListingClient`).
    public func fetch(waited: inout Double) throws -> Result<Fetched, Unavailable> {
        switch try fetchUnredacted(waited: &waited) {
        case .success(let fetched): return .success(fetched)
        case .failure(let unavailable): return .failure(unavailable.redacted(SecretRedactor(secret: client.apiKey)))
        }
    }

    private func fetchUnredacted(waited: inout Double) throws -> Result<Fetched, Unavailable> {
        let started = Timestamps.now()
        switch try client.fetch(waited: &waited) {
        case .notFound: return .failure(.notFound)
        case .tooLarge(let limit): return .failure(.tooLarge(limit: limit))
        case .failed(let detail): return .failure(.failed(detail))
        case .status(let status, let body):
            let text = String(decoding: body.prefix(200), as: UTF8.self)
            return .failure(.failed("HTTP \(status): \(ReplyVerifier.printable(text, limit: 200))"))
        case .body(let raw):
            return Self.verify(
                raw, verifier: verifier, maxClockSkew: maxClockSkew, apiKey: client.apiKey,
                fetchedAt: started, receivedAt: Timestamps.now())
        }
    }

    /// A listing's body, verified: what `fetch` does once the bytes are in (and what the
    /// simulator does with its server's listing).
    package static func verify(
        _ raw: OwnedBytes, verifier: ListingVerifier, maxClockSkew: Double, apiKey: String,
        fetchedAt: Double, receivedAt: Double,
        clock: () -> Double = Timestamps.now
    ) -> Result<Fetched, Unavailable> {
        switch verifier.verify(raw, maxAge: maxClockSkew, now: receivedAt) {
        case .untrusted(let reason, let detail):
            return .failure(.untrusted(reason, detail))
        case .trusted(let listing):
            guard listing.code == 730 else {
                return .failure(.notListing(code: listing.code, message: listing.index.message))
            }
            // Its entries are stored and shown (owner names): none may carry the key.
            if let redactor = SecretRedactor(secret: apiKey), redactor.occurs(in: listing.index.payload.buffer) {
                return .failure(.carriesKey)
            }
            return .success(
                Fetched(
                    listing: listing, bytes: raw.count, fetchedAt: fetchedAt,
                    receivedAt: receivedAt, verifiedAt: clock()))
        }
    }

    /// Keeps the signed listing now, whatever it settles; returns its id. The storing form is
    /// `ListingArchive`'s (each entry once, the listing as runs over them). `apply` with a
    /// `ListingKeeper` stores it only once a settlement needs it.
    public static func store(_ fetched: Fetched, server: String, in db: Database) throws -> Int64 {
        try db.transaction { try ListingArchive.store(fetched, server: server, in: db) }
    }

    static let batchSize = 500

    /// Walks the selected rows against the listing. `keeper` nil: a dry run (nothing written);
    /// else the keeper stores the listing when the first settlement is written, and not at all
    /// when none is.
    /// `defaultTimeout` stands in for runs that did not record theirs.
    /// The end of a run's rows (`?2`: the run): uncertain ones, and those it rejected or
    /// assigned. Read through `work_unsettled` and `attempts_by_run`, not a scan of `work`.
    static let endOfRunCondition =
        "state = 'uncertain' OR (state IN ('rejected', 'assigned') AND id IN (SELECT work_id FROM attempts WHERE run_id = ?2))"

    /// One batch of the walk over the rows `condition` selects, after row `?1`.
    static func walkSQL(_ condition: String) -> String {
        """
        SELECT id, license_key, owner_name, email, state, attempts FROM work
        WHERE id > ?1 AND (\(condition)) ORDER BY id LIMIT \(batchSize)
        """
    }

    public static func apply(
        _ fetched: Fetched, keeper: ListingKeeper?, selection: Selection, in db: Database,
        defaultTimeout: Double, maxAttempts: Int, report: (Change) -> Void
    ) throws -> Counts {
        var counts = Counts()
        let condition: String
        var runID: Int64?
        switch selection {
        case .states(let states):
            let wanted = Set(states)
            var terms: [String] = []
            for state in wanted.sorted(by: { $0.rawValue < $1.rawValue })
            where ReconcileRules.selectableStates.contains(state) {
                if state == .rejected {
                    terms.append(
                        "(state = 'rejected' AND NOT EXISTS (SELECT 1 FROM settlements s WHERE s.work_id = work.id AND s.settled_at = work.updated_at))"
                    )
                } else if state == .retry {
                    terms.append("(\(WorkQueue.rescuedRetries))")
                } else if state == .assigned {
                    terms.append("state = 'assigned'")
                } else {
                    terms.append("state = '\(state.rawValue)'")
                }
            }
            condition = terms.isEmpty ? "0" : terms.joined(separator: " OR ")
        case .maybeDeliveredRetries:
            condition = WorkQueue.rescuedRetries
        case .startOfRun:
            condition = "state = 'uncertain' OR (\(WorkQueue.rescuedRetries))"
        case .endOfRun(let id):
            runID = id
            condition = endOfRunCondition
        }
        let select = try db.prepare(walkSQL(condition))
        let timing = try db.prepare(
            """
            SELECT max(a.started_at), max(CASE WHEN a.http_status IS NOT NULL THEN a.ended_at END), max(r.request_timeout)
            FROM attempts a LEFT JOIN runs r ON r.id = a.run_id WHERE a.work_id = ?1
            """)
        let settle = try db.prepare(
            """
            INSERT INTO settlements (work_id, listing_id, entry_index, entry, from_state, to_state, rule, reason, settled_at)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
            """)
        let update = try db.prepare(
            """
            UPDATE work SET state = ?1, last_error = ?2, updated_at = ?3,
                next_attempt_at = CASE WHEN ?1 = 'retry' THEN ?4 ELSE next_attempt_at END,
                maybe_delivered = CASE WHEN ?6 = 'assigned' THEN 1 ELSE maybe_delivered END
            WHERE id = ?5 AND state = ?6
            """)
        let index = fetched.listing.index
        let takenAt = fetched.takenAt
        var after: Int64 = 0
        func walk() throws {
            while true {
                struct Pending {
                    var id: Int64
                    var key: String
                    var row: ReconcileRules.Row
                }
                var batch: [Pending] = []
                try select.bind(1, after)
                if let runID { try select.bind(2, runID) }
                while try select.step() {
                    guard let state = WorkState(rawValue: select.string(4) ?? "") else { continue }
                    batch.append(
                        Pending(
                            id: select.int(0), key: select.string(1) ?? "",
                            row: ReconcileRules.Row(
                                state: state, ownerName: select.string(2), email: select.string(3),
                                attempts: Int(select.int(5)), requestTimeout: defaultTimeout)))
                }
                select.reset()
                guard let last = batch.last else { break }
                after = last.id
                let now = Timestamps.now()
                let nowText = Timestamps.iso8601(now)
                for var pending in batch {
                    counts.selected += 1
                    let entry = index.entry(forKey: pending.key)
                    if let entry, ReconcileRules.ruleFor(pending.row, entry: entry) == .available {
                        // Only availability depends on time: read the row's attempts for it.
                        try timing.bind(1, pending.id)
                        if try timing.step() {
                            pending.row.lastAttemptStart = timing.string(0).flatMap(Timestamps.parseISO8601)
                            pending.row.lastReplyEnd = timing.string(1).flatMap(Timestamps.parseISO8601)
                            if !timing.isNull(2) { pending.row.requestTimeout = max(defaultTimeout, timing.double(2)) }
                        }
                        timing.reset()
                    }
                    let decision = ReconcileRules.decide(
                        pending.row, entry: entry, takenAt: takenAt, maxAttempts: maxAttempts)
                    counts.byRule[decision.rule.rawValue, default: 0] += 1
                    // A maybe-delivered row the listing leaves out keeps its state, with that reason.
                    let explainsAbsence =
                        !decision.settled && decision.rule == .unknown && pending.row.state != .assigned
                    guard decision.settled || explainsAbsence else {
                        counts.unsettled += 1
                        report(
                            Change(licenseKey: pending.key, from: pending.row.state, decision: decision, written: false)
                        )
                        continue
                    }
                    if decision.settled {
                        counts.settled += 1
                        counts.toState[decision.state.rawValue, default: 0] += 1
                    } else {
                        counts.unsettled += 1
                    }
                    if ReconcileRules.contradicts(decision, from: pending.row.state) { counts.contradicted += 1 }
                    // A row the listing leaves in retry (or assigned) as it was needs no record.
                    let changes = decision.state != pending.row.state || decision.state == .rejected || explainsAbsence
                    var written = false
                    if changes, let listingID = try keeper?.id() {
                        let reason = decision.reason + " [listing \(listingID)]"
                        try settle.bind(1, pending.id)
                        try settle.bind(2, listingID)
                        try settle.bind(3, entry.map { Int64($0.index) })
                        try settle.bind(4, entry?.text)
                        try settle.bind(5, pending.row.state.rawValue)
                        try settle.bind(6, decision.state.rawValue)
                        try settle.bind(7, decision.rule.rawValue)
                        try settle.bind(8, reason)
                        try settle.bind(9, nowText)
                        try settle.step()
                        settle.reset()
                        try update.bind(1, decision.state.rawValue)
                        try update.bind(2, reason)
                        try update.bind(3, nowText)
                        try update.bind(4, now)
                        try update.bind(5, pending.id)
                        try update.bind(6, pending.row.state.rawValue)
                        try update.step()
                        update.reset()
                        written = true
                    }
                    if changes {
                        report(
                            Change(
                                licenseKey: pending.key, from: pending.row.state, decision: decision, written: written))
                    }
                }
            }
        }
        // One transaction for the whole walk: committed per batch, the pages every batch
        // touches (the tables' and indexes' upper levels, the settlements' last page) were
        // written to the WAL once per batch, and checkpointed as often. Memory stays bounded
        // all the same: SQLite spills a large transaction's pages to the WAL as it goes. A dry
        // run only reads, without the lock (a run may be going): it takes no write lock.
        if keeper == nil {
            try walk()
        } else {
            try db.transaction { try walk() }
        }
        return counts
    }
}
