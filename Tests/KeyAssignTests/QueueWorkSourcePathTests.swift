import Foundation
import Testing

@testable import KeyAssign

/// Issue 21, the per-row history: a work row names its file through its import
/// (`imports.path`), not by repeating the path (schema version 8); rows imported before keep
/// their `source_file`, and every reader shows either.
@Suite struct QueueWorkSourcePathTests {
    @Test func aRowNamesItsFileThroughItsImportAndOlderRowsKeepTheirs() throws {
        let bench = try RunnerBench(inventory: 600)
        let path = bench.dir.path + "/sales.csv"
        let db = try bench.open()
        // Not one byte of path per row: before, each of the 600 rows held it (~70 bytes here).
        #expect(try bench.count("SELECT coalesce(sum(length(source_file)), -1) FROM work") == 0)
        let pages = try db.scalarInt("SELECT sum(pgsize) FROM dbstat WHERE name = 'work'") ?? 0
        let perRow = Double(pages) / 600
        #expect(perRow < 230, "bytes of pages per work row: \(perRow)")

        // A row as a version-7 database holds it: its own path.
        let oldKey = bench.inventory[1]
        try db.execute("UPDATE work SET source_file = '/old/exports/night.csv' WHERE license_key = '\(oldKey)'")

        let report = try CLI.run(["report", "--db", bench.db])
        #expect(report.status == 0)
        let lines = report.stdout.split(whereSeparator: \.isNewline)
        let newLine = try #require(lines.first { $0.hasPrefix(bench.inventory[0]) })
        #expect(newLine.contains(",\(path),2,"), "\(newLine)")
        let oldLine = try #require(lines.first { $0.hasPrefix(oldKey) })
        #expect(oldLine.contains(",/old/exports/night.csv,3,"), "\(oldLine)")

        let history = try CLI.run(["history", "--db", bench.db, bench.inventory[0]])
        #expect(history.stdout.contains("source       \(path):2"), "\(history.stdout)")
        let oldHistory = try CLI.run(["history", "--db", bench.db, oldKey])
        #expect(oldHistory.stdout.contains("source       /old/exports/night.csv:3"), "\(oldHistory.stdout)")

        // retry --source finds either: the rows of the import, and the one kept the old way.
        try db.execute("UPDATE work SET state = 'failed'")
        let retryNew = try CLI.run(["retry", "--db", bench.db, "--source", path])
        #expect(retryNew.status == 0, "\(retryNew.stderr)")
        #expect(try bench.count("SELECT count(*) FROM work WHERE state = 'pending'") == 599)
        let retryOld = try CLI.run(["retry", "--db", bench.db, "--source", "/old/exports/night.csv"])
        #expect(retryOld.status == 0, "\(retryOld.stderr)")
        #expect(try bench.count("SELECT count(*) FROM work WHERE state = 'pending'") == 600)

        // A conflicting row in a later file names the first row's file, through its import.
        let later = bench.dir.path + "/later.csv"
        try "license_key,owner_name,email\n\(bench.inventory[2]),Someone Else,else@example.com\n"
            .write(toFile: later, atomically: true, encoding: .utf8)
        #expect(try CLI.run(["import", "--db", bench.db, later]).status == 0)
        let invalid = try CLI.run(["report", "--db", bench.db, "--invalid"])
        #expect(invalid.stdout.contains("email than \(path):4, which is kept"), "\(invalid.stdout)")
    }
}
