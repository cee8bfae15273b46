import Foundation
import Testing

@testable import KeyAssign

@Suite struct SchemaTests {
    @Test func migrationsCreateTheTablesOnce() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/t.sqlite"
        do {
            let db = try Database(path: path)
            #expect(try db.scalarInt("PRAGMA user_version") == Migrations.all.last!.version.int64)
            #expect(try db.scalarInt("SELECT count(*) FROM work") == 0)
        }
        // Reopening must not re-run migration 1.
        let again = try Database(path: path)
        #expect(try again.scalarInt("SELECT count(*) FROM sqlite_master WHERE name = 'work'") == 1)
        let mode = try again.prepare("PRAGMA journal_mode")
        #expect(try mode.step())
        #expect(mode.string(0) == "wal")
    }

    @Test func aVersion1DatabaseGainsTheRunIndexAndTheSummaryUsesIt() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/t.sqlite"
        do {
            // Back to version 1: undo migrations 2 to 10.
            let db = try Database(path: path)
            try db.execute(
                """
                DROP TRIGGER work_total_insert; DROP TRIGGER work_total_delete; DROP TABLE work_total;
                DROP INDEX work_unsettled; DROP TABLE listing_chunks;
                ALTER TABLE attempts DROP COLUMN signed_reply_id; DROP TABLE signed_replies; DROP TABLE signing_keys;
                DROP TABLE listing_entries; DROP INDEX imports_by_path;
                ALTER TABLE imports DROP COLUMN file_device; ALTER TABLE imports DROP COLUMN file_inode;
                ALTER TABLE imports DROP COLUMN file_mtime_ns;
                DROP INDEX attempts_by_run;
                ALTER TABLE attempts DROP COLUMN signing_key_file;
                ALTER TABLE attempts DROP COLUMN signing_key_sha256;
                DROP TABLE settlements; DROP TABLE listings;
                ALTER TABLE runs DROP COLUMN request_timeout;
                DROP TABLE quota_sends; DROP TABLE quota_state;
                PRAGMA user_version = 1
                """)
        }
        let db = try Database(path: path)
        #expect(try db.scalarInt("PRAGMA user_version") == Int64(Migrations.all.last?.version ?? 0))
        #expect(
            try db.scalarInt("SELECT count(*) FROM pragma_table_info('attempts') WHERE name LIKE 'signing_key_%'") == 2)
        #expect(try db.scalarInt("SELECT count(*) FROM sqlite_master WHERE name IN ('listings', 'settlements')") == 2)
        let plan = try db.prepare("EXPLAIN QUERY PLAN " + WorkQueue.statesOfRowsTouchedByRunSQL)
        var steps: [String] = []
        while try plan.step() { steps.append(plan.string(3) ?? "") }
        #expect(steps.contains { $0.contains("attempts_by_run") }, "plan: \(steps)")
    }

    @Test func readingCommandsDoNotCreateADatabase() throws {
        let dir = try TemporaryDirectory()
        #expect(throws: DatabaseOpenError.self) { try Database(path: dir.path + "/missing.sqlite", create: false) }
    }
}

extension Int32 {
    var int64: Int64 { Int64(self) }
}
