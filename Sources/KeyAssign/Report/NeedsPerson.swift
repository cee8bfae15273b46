/// What "needs a person" means, in one place for `status`, the HTML page and the metrics file:
/// every row in `failed` or `uncertain`, and every input row the import refused (`invalid_rows`,
/// conflicts included) that no later import has since queued under the same license key.
///
/// The last clause lets the count (and the alert on it) go back to 0 once the export is fixed
/// and imported again; an invalid row whose key could not be read at all stays counted until
/// a person removes it from the database (docs/scheduling.md, "Invalid input rows").
public enum NeedsPerson {
    /// The work states a person must decide.
    public static let states: [WorkState] = [.failed, .uncertain]

    /// `invalid_rows` (as `r`) that still need a person.
    public static let openInvalidRowCondition = """
        NOT (r.license_key IS NOT NULL AND EXISTS (SELECT 1 FROM work w
             WHERE w.license_key = r.license_key AND w.import_id > r.import_id))
        """

    static var statesSQL: String { states.map { "'\($0.rawValue)'" }.joined(separator: ", ") }

    /// The same as `state IN (statesSQL)`, spelt as ORs so that SQLite sees it implies the
    /// partial index `work_unsettled`'s condition (migration 9): no scan of `work`.
    static var statesCondition: String { states.map { "state = '\($0.rawValue)'" }.joined(separator: " OR ") }

    /// Invalid input rows still open.
    public static func openInvalidRows(_ db: Database) throws -> Int64 {
        try db.scalarInt("SELECT count(*) FROM invalid_rows r WHERE \(openInvalidRowCondition)") ?? 0
    }

    /// Rows in `states`.
    public static func workRows(_ db: Database) throws -> Int64 {
        try db.scalarInt("SELECT count(*) FROM work WHERE \(statesCondition)") ?? 0
    }

    public static func count(_ db: Database) throws -> Int64 {
        try workRows(db) + openInvalidRows(db)
    }
}
