import Logging

/// What `run` and `sync` do with the key listing (`--no-reconcile` turns it off): rows a dead
/// run left are checked against a listing before any is sent again, and at the end one
/// listing settles the rows left `uncertain` and explains the rows this run rejected.
///
/// A listing the server does not have (404) or that is over `--max-listing-bytes` changes
/// nothing: the run behaves as it did without reconciliation, with one warning. Any other
/// problem with the listing (a forged signature, a network error) is logged as well and
/// changes nothing either: the rows stay as the run left them.
package final class RunReconciliation {
    private let options: RunOptions
    private var reconciler: Reconciler
    private let logger: Logger
    private let keyRing: KeyRing
    /// The run's clocks: a stale listing's clock offset is read on the run's wall clock (the
    /// simulator's, under simulation), not the process's.
    private let clock: any RunClock
    private var warned = false
    /// The simulator's server instead of `reconciler.fetch` (KeyAssignSandbox/Simulation).
    private var fetchOverride: (() throws -> Result<Reconciler.Fetched, Reconciler.Unavailable>)?
    /// What this run's listings spent waiting for the server to begin answering; it counts
    /// against `--max-wait` like any other wait of the run.
    private(set) var waited: Double = 0

    /// A listing that fails verification for the reasons a whole run would (a wrong
    /// --public-key, a wrong clock): the words of `EarlyStop`. nil for any other problem.
    /// `wallNow`: the local wall clock (Unix seconds), against which a stale listing's offset is told.
    static func configurationMessage(
        _ unavailable: Reconciler.Unavailable, keyRing: KeyRing, maxClockSkew: Double, wallNow: Double
    ) -> String? {
        guard case .untrusted(let reason, let detail) = unavailable else { return nil }
        if reason == .stale {
            let offset = EarlyStop.signedAt(detail).map { wallNow - $0 }
            return EarlyStop.freshnessMessage(
                what: "the key listing (GET \(ServerEndpoint.listingPath))", offset: offset,
                maxClockSkew: maxClockSkew)
        }
        guard reason.isSignatureProblem, reason != .envelopeNotJSON, reason != .envelopeMissingFields else {
            return nil
        }
        return EarlyStop.signatureMessage(
            what: "the key listing (GET \(ServerEndpoint.listingPath))", reasons: [reason.rawValue],
            keys: keyRing.signingKeys,
            detail: reason == .unknownKey ? detail : nil)
    }

    init(options: RunOptions, keyRing: KeyRing, logger: Logger, clock: any RunClock = SystemRunClock()) {
        self.options = options
        self.logger = logger
        self.keyRing = keyRing
        self.clock = clock
        self.reconciler = Reconciler(
            client: ListingClient(
                endpoint: options.endpoint, apiKey: options.apiKey, timeout: options.timeout,
                caFile: options.caFile, maxBytes: options.maxListingBytes),
            verifier: ListingVerifier(keyRing: keyRing, listingKeyName: options.listingKeyName),
            maxClockSkew: options.maxClockSkew)
        reconciler.client.listingTimeout = options.listingTimeout
    }

    /// With the listing fetched by `fetch` instead of over the network, on `clock`: the simulator's.
    package convenience init(
        options: RunOptions, keyRing: KeyRing, logger: Logger, clock: any RunClock,
        fetch: @escaping () throws -> Result<Reconciler.Fetched, Reconciler.Unavailable>
    ) {
        self.init(options: options, keyRing: keyRing, logger: logger, clock: clock)
        fetchOverride = fetch
    }

    /// Right after the rescue and `CarryOver.renew`, before anything is sent. Records this run's
    /// --timeout (the race rule reads it later). Every `uncertain` row, whichever run left it,
    /// and every row a dead run left is checked against one listing: a key available is sent
    /// tonight, one held is settled without a request. A listing that fails verification stops
    /// the run here (exit 78): nothing has verified yet, and the same key or clock would fail
    /// every reply.
    package func afterRescue(_ db: Database, runID: Int64, recovered: Int, renewed: CarryOver.Renewed) throws {
        let record = try db.prepare("UPDATE runs SET request_timeout = ?1 WHERE id = ?2")
        try record.bind(1, options.timeout)
        try record.bind(2, runID)
        try record.step()
        if renewed.retried + renewed.uncertain > 0 {
            logger.notice(
                "\(renewed.retried + renewed.uncertain) row(s) that failed in earlier runs for a passing reason come back: \(renewed.retried) to send again, \(renewed.uncertain) maybe delivered, to settle from the key listing first"
            )
        }
        guard options.reconcile else { return }
        // Not only what this run's rescue found: a run killed during its own start-of-run
        // listing has already rescued its predecessor's rows into `retry` (maybe delivered), and
        // those must be checked before anything is resent, by whichever run comes next.
        let unsettled =
            try db.scalarInt(
                "SELECT count(*) FROM work WHERE state = 'uncertain' OR (\(WorkQueue.rescuedRetries))") ?? 0
        guard recovered > 0 || unsettled > 0 else { return }
        let why =
            recovered > 0
            ? "rows recovered from a dead run and uncertain rows"
            : "uncertain and maybe-delivered rows left by earlier runs"
        try settle(db, selection: .startOfRun, why: why, runWaited: waited, stopOnUntrusted: true)
    }

    /// After the last reply of the run, before its summary. When rows need a listing anyway
    /// (uncertain, or rejected by this run), the rows this run assigned are confirmed against
    /// the same listing, by key and email: no extra fetch. `runWaited`: what the run has
    /// waited so far, listings included (the rest of `--max-wait` is the listing's to wait).
    /// Rows the end of run `?1` must settle; through `work_unsettled`, not a scan of `work`.
    static let endOfRunCountSQL = """
        SELECT count(*) FROM work WHERE state = 'uncertain'
            OR (state = 'rejected' AND id IN (SELECT work_id FROM attempts WHERE run_id = ?1))
        """

    package func atEnd(_ db: Database, runID: Int64, runWaited: Double? = nil) throws {
        guard options.reconcile else { return }
        let pending = try db.scalarInt(Self.endOfRunCountSQL, [.int(runID)]) ?? 0
        guard pending > 0 else { return }
        try settle(
            db, selection: .endOfRun(runID: runID), why: "uncertain and rejected rows", runWaited: runWaited ?? waited)
    }

    private func settle(
        _ db: Database, selection: Reconciler.Selection, why: String, runWaited: Double,
        stopOnUntrusted: Bool = false
    ) throws {
        do {
            let fetched: Reconciler.Fetched
            // The server gets what is left of --max-wait to begin answering, and never less
            // than one request's --timeout (ListingClient); a listing that then keeps moving is
            // received, not waited for, and only --listing-timeout bounds it.
            reconciler.client.firstByteWait = max(0, options.maxWait - runWaited)
            var listingWaited = 0.0
            defer { waited += listingWaited }
            switch try fetchOverride?() ?? reconciler.fetch(waited: &listingWaited) {
            case .failure(let unavailable):
                if stopOnUntrusted,
                    let message = Self.configurationMessage(
                        unavailable, keyRing: keyRing,
                        maxClockSkew: options.maxClockSkew, wallNow: clock.wall())
                {
                    throw KeyAssignError(.config, message)
                }
                if unavailable.isExpected {
                    if !warned {
                        logger.warning(
                            "\(unavailable.message); rows are left as they are (--no-reconcile silences this)")
                    }
                } else {
                    logger.error("\(unavailable.message); rows are left as they are")
                }
                warned = true
                return
            case .success(let listing):
                fetched = listing
            }
            let keeper = ListingKeeper(fetched, server: options.endpoint.display, in: db)
            var counts = try Reconciler.apply(
                fetched, keeper: keeper, selection: selection, in: db,
                defaultTimeout: options.timeout, maxAttempts: options.maxAttempts
            ) { _ in }
            counts.toState.removeValue(forKey: WorkState.retry.rawValue)
            if counts.contradicted > 0 {
                logger.error(
                    "the server's signed key listing contradicts \(counts.contradicted) row(s) recorded assigned (changed after our assignment, or a replayed reply): moved to retry or rejected, see `keyassign report`"
                )
            }
            if options.progress != .quiet || counts.settled > 0 {
                let outcome = counts.toState.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(
                    separator: ", ")
                logger.notice(
                    "reconciled \(why) with listing \(keeper.storedID.map(String.init) ?? "(not stored: it settles nothing)") (\(fetched.listing.index.count) keys): \(counts.selected) checked\(outcome.isEmpty ? "" : ", " + outcome)\(counts.unsettled > 0 ? ", \(counts.unsettled) waiting for a later listing" : "")"
                )
            }
        } catch let error as KeyAssignError where error.status == .config {
            throw error
        } catch let error as DatabaseError {
            // A database failure here is the run's failure too.
            throw error
        } catch {
            // Anything else (libcurl missing) only costs the reconciliation.
            logger.error("reconciliation failed: \(error); rows are left as they are")
        }
    }
}
