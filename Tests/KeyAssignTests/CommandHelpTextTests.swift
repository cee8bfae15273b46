import Foundation
import Testing

/// Issue 20, item 8: help prose is wrapped once, by the argument parser at the terminal's
/// width, never also by hard line breaks in the source (which then show as ragged lines, and
/// become mid-sentence line breaks in the man pages); the top-level help says what keyassign
/// does and lists the exit statuses. (The man pages themselves: scripts/check-install runs
/// `mandoc -Tlint` on every page.)
@Suite struct CommandHelpTextTests {
    static let commands = [
        "demo", "import", "run", "sync", "reconcile", "status", "report", "retry", "history",
        "audit", "verify", "sandbox",
    ]

    @Test func proseIsWrappedOnlyByTheParser() throws {
        for command in [""] + Self.commands {
            let result = try CLI.run(
                command.isEmpty ? ["--help"] : [command, "--help"], environment: ["COLUMNS": "2000"])
            #expect(result.status == 0)
            // The overview and discussion: everything before USAGE.
            let prose = result.stdout.components(separatedBy: "\nUSAGE:")[0].split(
                separator: "\n", omittingEmptySubsequences: false)
            for (line, next) in zip(prose, prose.dropFirst()) where !line.isEmpty && !next.isEmpty {
                // At 2000 columns a paragraph is one line: a line that goes on in lower case is a hard break.
                #expect(!(next.first?.isLowercase ?? false), "keyassign \(command) --help: \"\(line)\" / \"\(next)\"")
            }
        }
    }

    @Test func theTopLevelHelpDescribesAndListsTheExitStatuses() throws {
        let help = try CLI.run(["--help"])
        #expect(help.stdout.contains("queues one row per license key"))
        for status in ["0 ", "1 ", "3 ", "10 ", "64 ", "65 ", "69 ", "74 ", "75 ", "78 ", "130 ", "143 "] {
            #expect(help.stdout.split(separator: "\n").contains { $0.hasPrefix(status) }, "exit status \(status)")
        }
    }
}
