/// The statements on the quota tables (`quota_sends`, `quota_state`, migration 6), in one place
/// beside the schema, as `WorkQueue` keeps those on `work`: what a run sent and when, and what
/// the server said of its quota, so that the next run the same day knows what is left.
/// Times are Unix seconds.
struct QuotaStore {
    let database: Database

    /// What the server said of its quota, as the last run left it.
    struct ServerState: Equatable {
        /// A 429's `Retry-After` ran past --max-wait: nothing is sent before this.
        var closedUntil: Double?
        var closedReason: String?
        var limit: Int?
        /// `X-RateLimit-Remaining`, less what was sent after the reply that said it.
        var remaining: Int?
        var reset: Double?
        var reportedAt: String?
        /// Requests the last run stopped by the quota got through.
        var perRun: Int?
    }

    static let sendsSinceSQL = "SELECT sent_unix, requests FROM quota_sends WHERE sent_unix > ?1 ORDER BY sent_unix"
    static let insertSendSQL = "INSERT INTO quota_sends (sent_unix, requests) VALUES (?1, ?2)"
    static let forgetSendsSQL = "DELETE FROM quota_sends WHERE sent_unix <= ?1"
    static let stateSQL = """
        SELECT closed_until_unix, closed_reason, limit_count, remaining, reset_unix, reported_at, per_run
        FROM quota_state WHERE id = 1
        """
    static let saveStateSQL = """
        INSERT OR REPLACE INTO quota_state (id, closed_until_unix, closed_reason, limit_count, remaining, reset_unix,
                                            reported_at, per_run)
        VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)
        """

    /// Sends after `time`, oldest first.
    func sends(since time: Double) throws -> [(at: Double, requests: Int)] {
        let statement = try database.prepare(Self.sendsSinceSQL)
        try statement.bind(1, time)
        var sends: [(at: Double, requests: Int)] = []
        while try statement.step() { sends.append((statement.double(0), Int(statement.int(1)))) }
        return sends
    }

    func recordSend(at time: Double, requests: Int) throws {
        let statement = try database.prepare(Self.insertSendSQL)
        try statement.bind(1, time)
        try statement.bind(2, requests)
        try statement.step()
    }

    /// Drops sends no window reaches any more.
    func forgetSends(before time: Double) throws {
        let statement = try database.prepare(Self.forgetSendsSQL)
        try statement.bind(1, time)
        try statement.step()
    }

    func serverState() throws -> ServerState {
        let statement = try database.prepare(Self.stateSQL)
        guard try statement.step() else { return ServerState() }
        func number(_ column: Int32) -> Double? { statement.isNull(column) ? nil : statement.double(column) }
        func integer(_ column: Int32) -> Int? { statement.isNull(column) ? nil : Int(statement.int(column)) }
        return ServerState(
            closedUntil: number(0), closedReason: statement.string(1), limit: integer(2),
            remaining: integer(3), reset: number(4), reportedAt: statement.string(5), perRun: integer(6))
    }

    func save(_ state: ServerState) throws {
        let statement = try database.prepare(Self.saveStateSQL)
        try statement.bind(1, state.closedUntil)
        try statement.bind(2, state.closedReason)
        try statement.bind(3, state.limit)
        try statement.bind(4, state.remaining)
        try statement.bind(5, state.reset)
        try statement.bind(6, state.reportedAt)
        try statement.bind(7, state.perRun)
        try statement.step()
    }
}
