/// Stores a fetched listing the first time a settlement needs it, in the walk's transaction:
/// a listing that settles, explains or confirms no row is evidence of nothing, and is not kept
/// (issue 21: `reconcile` with no row selected stored 838 kB).
public final class ListingKeeper {
    private let fetched: Reconciler.Fetched
    private let server: String
    private let db: Database
    /// The listing's id once stored.
    public private(set) var storedID: Int64?
    /// What storing it took (seconds), for the log.
    public private(set) var storeSeconds: Double = 0

    public init(_ fetched: Reconciler.Fetched, server: String, in db: Database) {
        self.fetched = fetched
        self.server = server
        self.db = db
    }

    /// The listing's id, storing it now if it is not stored yet.
    func id() throws -> Int64 {
        if let storedID { return storedID }
        let started = Timestamps.now()
        let id = try ListingArchive.store(fetched, server: server, in: db)
        storeSeconds = Timestamps.now() - started
        storedID = id
        return id
    }
}
