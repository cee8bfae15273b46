import Foundation
import Testing

@testable import KeyAssign

/// Issue 20, item 8: `retry --source` matches the imported file however its path is written,
/// and a path that matches nothing is an error naming the nearest imported sources.
@Suite struct ReportRetrySourceTests {
    @Test func retrySourceMatchesRelativeDotAndAbsolutePaths() throws {
        let dir = try TemporaryDirectory()
        let db = dir.path + "/k.sqlite"
        let exports = dir.path + "/exports"
        try FileManager.default.createDirectory(atPath: exports, withIntermediateDirectories: true)
        try Data("license_key,owner_name,email\nK1,Ann,ann@example.com\nK2,Bo,bo@example.com\n".utf8)
            .write(to: URL(fileURLWithPath: exports + "/night.csv"))
        try Data("license_key,owner_name,email\nK3,Cy,cy@example.com\n".utf8)
            .write(to: URL(fileURLWithPath: exports + "/other.csv"))
        // Imported as a relative path, from the directory above the exports.
        #expect(
            try CLI.run(["import", "--db", db, "exports/night.csv", "exports/other.csv"], currentDirectory: dir.path)
                .status == 0)
        let database = try Database(path: db, create: false)
        func failAll() throws { try database.execute("UPDATE work SET state = 'failed'") }

        for (spelling, cwd) in [
            ("./exports/night.csv", dir.path), (exports + "/night.csv", "/"), ("night.csv", exports),
            ("exports//night.csv", dir.path), ("../exports/night.csv", exports),
        ] {
            try failAll()
            let result = try CLI.run(["retry", "--db", db, "--source", spelling], currentDirectory: cwd)
            #expect(result.status == 0, "\(spelling) from \(cwd): \(result.stderr)")
            #expect(result.stdout.contains("requeued 2 rows"), "\(spelling) from \(cwd): \(result.stdout)")
        }

        try failAll()
        let typo = try CLI.run(["retry", "--db", db, "--source", "exports/nigth.csv"], currentDirectory: dir.path)
        #expect(typo.status == 64)
        #expect(typo.stderr.contains("no imported source is that file"), "\(typo.stderr)")
        #expect(typo.stderr.contains("\"exports/night.csv\""))
        #expect(try database.scalarInt("SELECT count(*) FROM work WHERE state = 'pending'") == 0)
    }
}
