import Logging

/// Everything `keyassign reconcile` needs, already validated.
public struct ReconcileOptions: Sendable {
    public var databasePath: String
    public var endpoint: ServerEndpoint
    /// Never logged, stored or reported.
    public var apiKey: String
    /// The runs' --timeout, for runs that did not record theirs (the race rule).
    public var timeout: Double = 30
    public var maxClockSkew: Double = 300
    public var maxListingBytes: Int = ReconcileOptions.defaultMaxListingBytes
    /// The key name the listing must be signed with (`--listing-key`).
    public var listingKeyName = ListingVerifier.defaultListingKeyName
    /// `--listing-timeout`: the listing's whole transfer (`ListingClient`).
    public var listingTimeout: Double = ListingClient.defaultListingTimeout
    public var caFile: String?
    public var maxAttempts: Int = 5
    public var dryRun = false
    public var states: [WorkState] = [.uncertain, .rejected]

    public static let defaultMaxListingBytes = 256 << 20

    public init(databasePath: String, endpoint: ServerEndpoint, apiKey: String) {
        self.databasePath = databasePath
        self.endpoint = endpoint
        self.apiKey = apiKey
    }

    public func validate() throws {
        // The ranges are `FlagRange`'s, the same the command line checks.
        try FlagRange.timeout.check(timeout)
        try FlagRange.maxClockSkew.check(maxClockSkew)
        try FlagRange.maxListingBytes.check(maxListingBytes)
        try FlagRange.listingTimeout.check(listingTimeout)
        try FlagRange.maxAttempts.check(maxAttempts)
        if let state = states.first(where: { !ReconcileRules.selectableStates.contains($0) }) {
            throw KeyAssignError(
                .usage, "--state \(state.rawValue): reconcile settles uncertain, rejected, retry and assigned rows only"
            )
        }
    }
}

/// `keyassign reconcile`: one listing, verified and kept, then every selected row settled or
/// explained against it. Sends no assign request.
public enum ReconcileJob {
    /// Prints one line per row it changes (or would) through `output`; returns the exit status:
    /// 0 when every selected row was settled, 1 when some could not be or the listing is unusable,
    /// 4 (`contradicted`) when the listing contradicts rows recorded `assigned`, 78 when the listing
    /// fails verification the way a wrong --public-key or clock makes it.
    public static func run(
        _ options: ReconcileOptions, keyRing: KeyRing, logger: Logger,
        output: (String) -> Void
    ) throws -> ExitStatus {
        try options.validate()
        let db = try Database(path: options.databasePath, create: false)
        var reconciler = Reconciler(
            client: ListingClient(
                endpoint: options.endpoint, apiKey: options.apiKey, timeout: options.timeout,
                caFile: options.caFile, maxBytes: options.maxListingBytes),
            verifier: ListingVerifier(keyRing: keyRing, listingKeyName: options.listingKeyName),
            maxClockSkew: options.maxClockSkew)
        reconciler.client.listingTimeout = options.listingTimeout
        // The lock keeps a run (or any other writer) from moving the rows while they are
        // settled; a dry run writes nothing and needs none.
        let lock =
            options.dryRun ? nil : try DatabaseLock.acquire(databasePath: options.databasePath, command: "reconcile")
        defer { lock?.release() }
        let runID =
            options.dryRun
            ? nil
            : try RunRecord.open(db, server: options.endpoint.listingURL.absoluteString, logger: logger)
        let status: (status: ExitStatus, summary: String)
        do {
            status = try work(options, reconciler: reconciler, db: db, logger: logger, output: output)
        } catch {
            if let runID {
                RunRecord.close(db, runID: runID, status: ExitStatus(for: error), summaryJSON: nil, logger: logger)
            }
            throw error
        }
        if let runID {
            RunRecord.close(
                db, runID: runID, status: status.status,
                summaryJSON: "{\"reconcile\":\(JSONText.string(status.summary))}", logger: logger)
        }
        return status.status
    }

    private static func work(
        _ options: ReconcileOptions, reconciler: Reconciler, db: Database, logger: Logger,
        output: (String) -> Void
    ) throws -> (status: ExitStatus, summary: String) {
        logger.info(
            "reconcile: proxy: \(ProxyChoice.decide(url: options.endpoint.listingURL.absoluteString).description)")
        let fetched: Reconciler.Fetched
        switch try reconciler.fetch() {
        case .failure(let unavailable):
            logger.error("\(unavailable.message); nothing was changed")
            if let message = RunReconciliation.configurationMessage(
                unavailable, keyRing: reconciler.verifier.keyRing,
                maxClockSkew: options.maxClockSkew, wallNow: Timestamps.now())
            {
                logger.error("\(message)")
                return (.config, message)
            }
            return (.someFailed, unavailable.message)
        case .success(let listing):
            fetched = listing
        }
        // Stored when the first settlement needs it: a listing that settles nothing is not kept.
        let keeper = options.dryRun ? nil : ListingKeeper(fetched, server: options.endpoint.display, in: db)
        let storedAt = Timestamps.now()
        let prefix = options.dryRun ? "would " : ""
        // One line per row, handed on in blocks: a write per line was a system call per row.
        var lines = ""
        let counts = try Reconciler.apply(
            fetched, keeper: keeper, selection: .states(options.states), in: db,
            defaultTimeout: options.timeout, maxAttempts: options.maxAttempts
        ) { change in
            let decision = change.decision
            let what =
                decision.settled
                ? (decision.state == change.from
                    ? "\(prefix)explain \(change.from.rawValue)"
                    : "\(prefix)\(change.from.rawValue) -> \(decision.state.rawValue)")
                : "\(change.from.rawValue) stays (waiting)"
            // The reason quotes the listing (an owner name): escaped, so a field cannot end the line.
            lines +=
                [
                    TerminalText.escape(change.licenseKey), what, decision.rule.rawValue,
                    TerminalText.escape(decision.reason),
                ]
                .joined(separator: "\t") + "\n"
            if lines.utf8.count >= 1 << 16 {
                output(lines)
                lines = ""
            }
        }
        if !lines.isEmpty { output(lines) }
        let listingID = keeper?.storedID
        logger.info(
            "reconcile: \(fetched.bytes) bytes fetched in \(seconds(fetched.receivedAt - fetched.fetchedAt)), verified in \(seconds(fetched.verifiedAt - fetched.receivedAt)), \(listingID == nil ? "not stored" : "stored in \(seconds(keeper?.storeSeconds ?? 0))"), \(counts.selected) row(s) walked in \(seconds(Timestamps.now() - storedAt))"
        )
        let listing = fetched.listing
        let kept =
            listingID.map(String.init)
            ?? (options.dryRun ? "(dry run, not stored)" : "(not stored: it settles nothing)")
        var summary = "listing \(kept) of \(listing.index.count) keys"
        summary += " signed at \(Timestamps.iso8601(Double(listing.timestamp))) by key \(listing.keyName)"
        summary += "; \(counts.selected) row(s) selected, \(counts.settled) settled"
        if !counts.toState.isEmpty {
            summary +=
                " (" + counts.toState.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                + ")"
        }
        if counts.unsettled > 0 {
            summary += ", \(counts.unsettled) waiting for a later listing (the race rule, or not listed)"
        }
        if counts.contradicted > 0 {
            summary +=
                "; \(counts.contradicted) assigned row(s) contradicted by the listing (changed after our assignment)"
        }
        if listing.index.duplicateKeys > 0 {
            summary += "; \(listing.index.duplicateKeys) key(s) listed twice (the first entry counts)"
        }
        logger.notice("reconcile: \(summary)")
        if counts.contradicted > 0 { return (.contradicted, summary) }
        return (counts.unsettled == 0 ? .ok : .someFailed, summary)
    }

    private static func seconds(_ value: Double) -> String {
        "\(Double((value * 100).rounded()) / 100) s"
    }
}
