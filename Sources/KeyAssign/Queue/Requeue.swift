/// `keyassign retry`: puts selected finished rows back to `pending` for the next run.
///
/// The attempt counter restarts, so the row gets a full set of attempts again. The
/// attempts history, the idempotency token and `maybe_delivered` stay: a requeued
/// `uncertain` row whose next answer is 801 is still `uncertain`, never `rejected`.
public enum Requeue {
    public struct Selection: Sendable {
        public var states: [WorkState]
        public var keys: [String]
        public var sourceFile: String?

        public init(states: [WorkState] = [], keys: [String] = [], sourceFile: String? = nil) {
            self.states = states.isEmpty ? [.failed] : states
            self.keys = keys
            self.sourceFile = sourceFile
        }
    }

    /// The states `retry` may select: only finished ones. A row that is pending, due for a
    /// retry or in flight is already the queue's.
    public static let selectableStates: [WorkState] = [.failed, .uncertain, .rejected]

    /// Returns how many rows were requeued.
    public static func requeue(_ selection: Selection, in db: Database) throws -> Int {
        for state in selection.states where !selectableStates.contains(state) {
            throw KeyAssignError(
                .usage,
                "retry: --state \(state.rawValue) is not a finished state; choose from "
                    + selectableStates.map(\.rawValue).joined(separator: ", "))
        }
        var sql = """
            UPDATE work SET state = 'pending', attempts = 0, next_attempt_at = NULL, updated_at = ?
            WHERE state IN (\(selection.states.map { "'\($0.rawValue)'" }.joined(separator: ",")))
            """
        var arguments: [SQLValue] = [.text(Timestamps.nowISO8601())]
        if !selection.keys.isEmpty {
            sql +=
                " AND license_key IN (" + Array(repeating: "?", count: selection.keys.count).joined(separator: ",")
                + ")"
            arguments += selection.keys.map { .text($0) }
        }
        if let source = selection.sourceFile {
            sql += " AND \(WorkSourcePath.sql) = ?"
            arguments.append(.text(source))
        }
        return try db.transaction {
            let statement = try db.prepare(sql)
            try statement.bind(arguments)
            try statement.step()
            return db.changes
        }
    }
}
