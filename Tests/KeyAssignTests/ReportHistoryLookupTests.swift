import Foundation
import Testing

@testable import KeyAssign

/// Issue 20, item 6: `history` finds what support types: a key whose row was invalid (with
/// the reason), a key in the wrong case or with spaces around it, and the key of a row with
/// a quoted line break.
@Suite struct ReportHistoryLookupTests {
    @Test func historyFindsInvalidRowsAnyCaseAndLineBreakRows() throws {
        let dir = try TemporaryDirectory()
        let db = dir.path + "/k.sqlite"
        let file = dir.path + "/night.csv"
        try Data(
            """
            license_key,owner_name,email\r
            AB-12-CD,Ann Lee,ann@example.com\r
            BAD-MAIL-1,Bo Berg,not-an-address\r
            LB-77,"Cy\r
            Cole",cy@example.com\r
            SHORT-9,Di\r

            """.utf8
        ).write(to: URL(fileURLWithPath: file))
        let imported = try CLI.run(["import", "--db", db, file])
        #expect(imported.status == 0, "\(imported.stderr)")

        let typed = try CLI.run(["history", "--db", db, "--", "  ab-12-cd "])
        #expect(typed.status == 0, "\(typed.stderr)")
        #expect(typed.stdout.contains("license key  AB-12-CD"))

        let invalid = try CLI.run(["history", "--db", db, "bad-mail-1"])
        #expect(invalid.status == 0, "\(invalid.stderr)")
        #expect(invalid.stdout.contains("license key  BAD-MAIL-1"))
        #expect(invalid.stdout.contains("implausible email"), "\(invalid.stdout)")
        #expect(invalid.stdout.contains("night.csv:3"))

        let lineBreak = try CLI.run(["history", "--db", db, "LB-77"])
        #expect(lineBreak.status == 0, "\(lineBreak.stderr)")
        #expect(lineBreak.stdout.contains("license key  LB-77"), "\(lineBreak.stdout)")
        #expect(lineBreak.stdout.contains("in column \"owner_name\""), "\(lineBreak.stdout)")
        // The HTML page and the reports name its key too, not "(none)".
        let page = dir.path + "/p.html"
        #expect(try CLI.run(["report", "--html", page, "--db", db]).status == 0)
        let html = try String(contentsOfFile: page, encoding: .utf8)
        #expect(html.contains("<code>LB-77</code>"))

        // A row with too few fields has no key column to read: found by its text.
        let short = try CLI.run(["history", "--db", db, "short-9"])
        #expect(short.status == 0, "\(short.stderr)")
        #expect(short.stdout.contains("found in its text"))

        let unknown = try CLI.run(["history", "--db", db, "NOPE-1"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("no imported row has license key NOPE-1"))
    }
}
