import Logging

/// What `run` and `sync` do with the key listing (`--no-reconcile` turns it off): rows a dead
/// run left are checked against a listing before any is sent again, and at the end one
/// listing settles the rows left `uncertain` and explains the rows this run rejected.
///
/// A listing the server does not have (404) or that is over `--max-listing-bytes` changes
/// nothing: the run behaves as it did without reconciliation, with one warning. Any other
/// problem with the listing (a forged signature, a network error) is logged as well and
/// changes nothing either: the rows stay as the run left them.
final class RunReconciliation {
    private let options: RunOptions
    private let reconciler: Reconciler
    private let logger: Logger
    private var warned = false

    init(options: RunOptions, keyRing: KeyRing, logger: Logger) {
        self.options = options
        self.logger = logger
        self.reconciler = Reconciler(
            client: ListingClient(endpoint: options.endpoint, apiKey: options.apiKey, timeout: options.timeout,
                                  caFile: options.caFile, maxBytes: options.maxListingBytes),
            verifier: ListingVerifier(keyRing: keyRing), maxClockSkew: options.maxClockSkew)
    }

    /// Right after the rescue. Records this run's --timeout (the race rule reads it later).
    func afterRescue(_ db: Database, runID: Int64, recovered: Int) throws {
        let record = try db.prepare("UPDATE runs SET request_timeout = ?1 WHERE id = ?2")
        try record.bind(1, options.timeout)
        try record.bind(2, runID)
        try record.step()
        guard options.reconcile, recovered > 0 else { return }
        try settle(db, selection: .maybeDeliveredRetries, why: "rows recovered from a dead run")
    }

    /// After the last reply of the run, before its summary.
    func atEnd(_ db: Database, runID: Int64) throws {
        guard options.reconcile else { return }
        let pending = try db.scalarInt("""
            SELECT count(*) FROM work WHERE state = 'uncertain'
                OR (state = 'rejected' AND id IN (SELECT work_id FROM attempts WHERE run_id = ?1))
            """, [.int(runID)]) ?? 0
        guard pending > 0 else { return }
        try settle(db, selection: .endOfRun(runID: runID), why: "uncertain and rejected rows")
    }

    private func settle(_ db: Database, selection: Reconciler.Selection, why: String) throws {
        do {
            let fetched: Reconciler.Fetched
            switch try reconciler.fetch() {
            case .failure(let unavailable):
                if unavailable.isExpected {
                    if !warned {
                        logger.warning("\(unavailable.message); rows are left as they are (--no-reconcile silences this)")
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
            var counts = try Reconciler.apply(fetched, keeper: keeper, selection: selection, in: db,
                                              defaultTimeout: options.timeout, maxAttempts: options.maxAttempts) { _ in }
            counts.toState.removeValue(forKey: WorkState.retry.rawValue)
            if options.progress != .quiet || counts.settled > 0 {
                let outcome = counts.toState.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                logger.notice("reconciled \(why) with listing \(keeper.storedID.map(String.init) ?? "(not stored: it settles nothing)") (\(fetched.listing.index.count) keys): \(counts.selected) checked\(outcome.isEmpty ? "" : ", " + outcome)\(counts.unsettled > 0 ? ", \(counts.unsettled) waiting for a later listing" : "")")
            }
        } catch let error as DatabaseError {
            // A database failure here is the run's failure too.
            throw error
        } catch {
            // Anything else (libcurl missing) only costs the reconciliation.
            logger.error("reconciliation failed: \(error); rows are left as they are")
        }
    }
}
