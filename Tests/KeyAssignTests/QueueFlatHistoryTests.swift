import Foundation
import Testing

@testable import KeyAssign

/// Issue 21: what runs every night does not read the whole `work` table, which grows by every
/// row ever imported. The statements' query plans hold no `SCAN work` (migration 9's partial
/// index `work_unsettled`, and `work_due`), and `status`'s counts stay exact without one
/// (`assigned` is `work_total`, kept by triggers, less the other states).
@Suite struct QueueFlatHistoryTests {
    static func plan(_ db: Database, _ sql: String) throws -> [String] {
        let statement = try db.prepare("EXPLAIN QUERY PLAN " + sql)
        var steps: [String] = []
        while try statement.step() { steps.append(statement.string(3) ?? "") }
        return steps
    }

    @Test func theNightlyStatementsDoNotScanWork() throws {
        let dir = try TemporaryDirectory()
        let db = try Database(path: dir.path + "/work.sqlite")
        let startOfRun = "state = 'uncertain' OR (\(WorkQueue.rescuedRetries))"
        let statements: [(String, String)] = [
            ("status: rows per state", StatusReport.countsSQL),
            ("status: rows needing a person", "SELECT count(*) FROM work WHERE \(NeedsPerson.statesCondition)"),
            ("end of run: rows to settle", RunReconciliation.endOfRunCountSQL),
            ("end of run: the walk", Reconciler.walkSQL(Reconciler.endOfRunCondition)),
            ("start of run: rows to settle", "SELECT count(*) FROM work WHERE \(startOfRun)"),
            ("start of run: the walk", Reconciler.walkSQL(startOfRun)),
        ]
        for (name, sql) in statements {
            let steps = try Self.plan(db, sql)
            // A walk along the whole table by rowid (`id > ?1`) is a scan too.
            #expect(
                !steps.contains {
                    $0.hasPrefix("SCAN work") || $0.hasPrefix("SEARCH work USING INTEGER PRIMARY KEY (rowid>")
                },
                "\(name): \(steps)")
            #expect(!steps.isEmpty, "\(name): no plan")
        }
        // The end-of-run walk reads `work_unsettled` for the uncertain rows and the run's
        // attempts for its own: what a night reads is what it selects.
        let walk = try Self.plan(db, Reconciler.walkSQL(Reconciler.endOfRunCondition))
        #expect(walk.contains { $0.contains("work_unsettled") }, "\(walk)")
        #expect(walk.contains { $0.contains("attempts_by_run") }, "\(walk)")
    }

    @Test func statusCountsAreExactWithoutAScan() throws {
        // 30 keys the sandbox knows (assigned) and 4 it does not (rejected or failed).
        let bench = try RunnerBench(inventory: 30, unknown: 4)
        let run = try bench.run()
        #expect(run.status == 0 || run.status == 1, "\(run.stderr)")
        let truth = try bench.stateCounts()
        #expect(truth["assigned"] == 30, "\(truth)")
        func reported() throws -> [String: Int] {
            var counts: [String: Int] = [:]
            for count in try StatusReport.load(from: bench.open()).counts where count.count != 0 {
                counts[count.state.rawValue] = Int(count.count)
            }
            return counts
        }
        #expect(try reported() == truth)
        // The total follows inserts and deletes made by any writer, by hand included.
        try bench.importRows(["extra-key-1", "extra-key-2"], file: "more.csv")
        try bench.open().execute("DELETE FROM work WHERE license_key = 'extra-key-1'")
        let after = try bench.stateCounts()
        #expect(after["assigned"] == 30 && after["pending"] == 1, "\(after)")
        #expect(try reported() == after)
        let status = try CLI.run(["status", "--db", bench.db])
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout.contains("30"), "\(status.stdout)")

        // A database of schema version 7 with rows gains the total as it is.
        try bench.open().execute(
            """
            DROP TRIGGER work_total_insert; DROP TRIGGER work_total_delete; DROP TABLE work_total;
            DROP INDEX work_unsettled; DROP TABLE listing_chunks; PRAGMA user_version = 8;
            """)
        #expect(try bench.count("SELECT rows FROM work_total") == 35)
        #expect(try reported() == after)
    }
}
