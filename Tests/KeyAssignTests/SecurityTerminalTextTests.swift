import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Issue 19, item 4 of "Measured": text from a server, a listing or a file name reaches the
/// terminal and the log escaped (`\x1b`, `\n`, `\t`), never raw: no ESC or BEL byte, and no
/// line a server forged. CSV and JSONL outputs stay exact.
@Suite struct SecurityTerminalTextTests {
    /// No raw control character but the newlines that end lines, and no line that starts
    /// with what the hostile text put after its newline.
    static func expectClean(
        _ text: String, _ name: String, forged: String = "keyassign: run 1: 0 assigned; FORGED",
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let controls = text.unicodeScalars.filter { $0.value < 0x20 && $0 != "\n" || $0.value == 0x7F }
        #expect(
            controls.isEmpty, "\(name) holds raw control characters \(controls.map { $0.value })",
            sourceLocation: sourceLocation)
        let lines = text.split(separator: "\n")
        #expect(
            !lines.contains { $0.hasPrefix(forged) }, "\(name) has a forged line:\n\(text)",
            sourceLocation: sourceLocation)
    }

    @Test func signedServerMessagesAreEscapedInTheLogAndInHistory() throws {
        var faults = SandboxConfiguration.Faults()
        faults.undocumentedCode = 1
        let bench = try RunnerBench(inventory: 2)
        bench.configuration.hostileText = true
        try bench.restart(faults: faults)
        // A signed refusal of the API key is logged with its message: escaped there too.
        let refused = try bench.run(["--no-reconcile"], apiKey: "not-the-key")
        #expect(refused.status == 3, "\(refused.stderr)")
        #expect(
            refused.stderr.contains(
                "Invalid API key\\x1b[2J\\x1b]0;owned\\x07\\nkeyassign: run 1: 0 assigned; FORGED LINE\\tcolumn"),
            "\(refused.stderr)")
        Self.expectClean(refused.stderr, "the refused run's log")
        let result = try bench.run(["--max-attempts", "1", "--no-reconcile"])
        #expect(result.status == 1, "\(result.stderr)")
        Self.expectClean(result.stderr, "run's log")
        let history = try CLI.run(["history", "--db", bench.db, bench.inventory[0]])
        #expect(
            history.stdout.contains(
                "Unexpected state\\x1b[2J\\x1b]0;owned\\x07\\nkeyassign: run 1: 0 assigned; FORGED LINE\\tcolumn"),
            "\(history.stdout)")
        // Tabs separate history's columns: any other tab would be raw.
        #expect(
            history.stdout.split(separator: "\n").filter { $0.hasPrefix("1\t") }.allSatisfy {
                $0.split(separator: "\t", omittingEmptySubsequences: false).count == 10
            },
            "\(history.stdout)")
        Self.expectClean(history.stdout.replacingOccurrences(of: "\t", with: " "), "history")
        // The JSONL report is data: the message exactly as the server signed it.
        let report = try CLI.run(["report", "--db", bench.db, "--format", "jsonl"])
        #expect(report.stdout.contains("\\u001b[2J"), "\(report.stdout)")
    }

    @Test func ownerNamesFromTheListingAreEscapedInReconcileAndHistory() throws {
        let bench = try RunnerBench(inventory: 2)
        let key = bench.inventory[0]
        let owner = "Mallory\u{1B}[31m\u{07}\nkeyassign: run 1: 0 assigned; FORGED\tcolumn"
        try bench.server.preassign(key: key, ownerName: owner, email: "m@example.com")
        _ = try bench.run(["--no-reconcile"])
        #expect(try bench.states()[key] == "rejected")
        let reconcile = try bench.reconcile()
        #expect(
            reconcile.stdout.contains("Mallory\\x1b[31m\\x07\\nkeyassign: run 1: 0 assigned; FORGED\\tcolumn"),
            "\(reconcile.stdout)")
        Self.expectClean(reconcile.stdout.replacingOccurrences(of: "\t", with: " "), "reconcile")
        #expect(
            reconcile.stdout.split(separator: "\n").allSatisfy {
                $0.split(separator: "\t", omittingEmptySubsequences: false).count == 4
            })
        let history = try CLI.run(["history", "--db", bench.db, key])
        #expect(history.stdout.contains("Mallory\\x1b[31m"), "\(history.stdout)")
        Self.expectClean(history.stdout.replacingOccurrences(of: "\t", with: " "), "history")
        let status = try CLI.run(["status", "--db", bench.db])
        Self.expectClean(status.stdout, "status")
    }

    @Test func csvFileNamesAreEscapedInImport() throws {
        let dir = try TemporaryDirectory()
        let name = dir.path + "/sales\u{1B}[2J\u{07}\nkeyassign: run 1: 0 assigned; FORGED\t.csv"
        try "license_key,owner_name,email\n\(UUID().uuidString),Ann,ann@example.com\n".write(
            toFile: name, atomically: true, encoding: .utf8)
        let result = try CLI.run(["import", "--db", dir.path + "/work.sqlite", name])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            result.stdout.contains("sales\\x1b[2J\\x07\\nkeyassign: run 1: 0 assigned; FORGED\\t.csv"),
            "\(result.stdout)")
        Self.expectClean(result.stdout, "import stdout")
        Self.expectClean(result.stderr, "import stderr")
    }

    @Test func aDuplicateMemberNameInTheListingIsEscapedBeforeAnySignatureCheck() throws {
        let bench = try RunnerBench(inventory: 1)
        try bench.restart(listing: .duplicateMember)
        let result = try bench.reconcile()
        #expect(result.status == 1)
        #expect(result.stderr.contains("duplicate member \"\\x1b[2J\\x07\\nkeyassign: FORGED\\t\""), "\(result.stderr)")
        Self.expectClean(result.stderr, "reconcile's log", forged: "keyassign: FORGED")
    }

    /// audit quotes what the database holds (here a key file name written into it by someone
    /// else): one line per discrepancy, escaped.
    @Test func auditLinesAreEscaped() throws {
        let bench = try RunnerBench(inventory: 1)
        #expect(try bench.run(["--no-reconcile"]).status == 0)
        try bench.open().execute(
            """
            UPDATE signing_keys SET sha256 = 'abc',
                file = '/keys/' || char(27) || '[2J' || char(10) || 'keyassign: FORGED'
            """)
        let audit = try CLI.run(["audit", "--db", bench.db, "--public-key", bench.server.publicKeyPath])
        #expect(audit.status == 1, "\(audit.stdout)\(audit.stderr)")
        #expect(audit.stdout.contains("(/keys/\\x1b[2J\\nkeyassign: FORGED)"), "\(audit.stdout)")
        Self.expectClean(audit.stdout, "audit", forged: "keyassign: FORGED")
    }

    @Test func theEscaperShowsControlsVisibly() {
        #expect(TerminalText.escape("a\u{1B}[2Jb\nc\td\u{07}\u{7F}\r") == "a\\x1b[2Jb\\nc\\td\\x07\\x7f\\r")
        #expect(TerminalText.escape("plain text, é and ü") == "plain text, é and ü")
        #expect(TerminalText.escape("\u{9B}31m \u{202E}txt") == "\\u{009b}31m \\u{202e}txt")
        #expect(TerminalText.escape("abcdef", limit: 3) == "abc")
    }
}
