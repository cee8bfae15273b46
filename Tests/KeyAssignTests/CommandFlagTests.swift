import Foundation
import Testing

@testable import KeyAssign

/// Every numeric flag of every command is checked against `FlagRange` before anything else
/// happens, and the API key is checked the same whichever way it comes.
@Suite struct CommandFlagTests {
    /// `run` and `sync` arguments that are otherwise good: a real public key, a loopback URL
    /// nothing listens on, and a database path that must still not exist after a refused flag.
    private func runArguments(_ command: String, db: String, extra: [String]) -> [String] {
        [
            command, "--server", "http://127.0.0.1:9", "--public-key", CLI.fixture("docs-demo-global-public.pem"),
            "--db", db,
        ] + extra
    }

    @Test func outOfRangeNumbersExit64BeforeTheDatabaseIsOpened() throws {
        let dir = try TemporaryDirectory()
        let csv = dir.path + "/a.csv"
        try Data("license_key\nK1\n".utf8).write(to: URL(fileURLWithPath: csv))
        let db = dir.path + "/never.sqlite"
        let runCases: [([String], String)] = [
            (["--timeout", "1e300"], "--timeout"),
            (["--timeout", "inf"], "--timeout"),
            (["--timeout", "nan"], "--timeout"),
            (["--timeout", "0"], "--timeout"),
            (["--backoff-cap", "inf"], "--backoff-cap"),
            (["--backoff-cap", "1e308", "--backoff-base", "1"], "--backoff-cap"),
            (["--backoff-base", "5", "--backoff-cap", "1"], "--backoff-base"),
            (["--concurrency", "0"], "--concurrency"),
            (["--concurrency", "1000000"], "--concurrency"),
            (["--rate", "-1"], "--rate"),
            (["--rate", "1e300"], "--rate"),
            (["--burst", "0"], "--burst"),
            (["--burst", "9000000000"], "--burst"),
            (["--max-attempts", "0"], "--max-attempts"),
            (["--max-clock-skew", "-5"], "--max-clock-skew"),
            (["--max-wait", "1e12"], "--max-wait"),
            (["--max-wait", "-inf"], "--max-wait"),
            (["--max-listing-bytes", "10"], "--max-listing-bytes"),
        ]
        var cases: [([String], String)] = []
        for (extra, flag) in runCases {
            cases.append((runArguments("run", db: db, extra: extra), flag))
            cases.append((runArguments("sync", db: db, extra: extra + [csv]), flag))
        }
        cases += [
            (runArguments("sync", db: db, extra: ["--settle", "-1", csv]), "--settle"),
            (runArguments("sync", db: db, extra: ["--settle", "inf", csv]), "--settle"),
            (["import", "--db", db, "--settle", "1e300", csv], "--settle"),
            (["import", "--db", db, "--settle", "nan", csv], "--settle"),
            (["import", "--db", db, "--wait", "inf", csv], "--wait"),
            (runArguments("reconcile", db: db, extra: ["--timeout", "1e300"]), "--timeout"),
            (runArguments("reconcile", db: db, extra: ["--max-clock-skew", "inf"]), "--max-clock-skew"),
            (runArguments("reconcile", db: db, extra: ["--max-listing-bytes", "5"]), "--max-listing-bytes"),
            (runArguments("reconcile", db: db, extra: ["--max-attempts", "0"]), "--max-attempts"),
            (
                [
                    "verify", "--public-key", CLI.fixture("docs-demo-global-public.pem"), "--max-age", "inf",
                    CLI.fixture("reply-800.json"),
                ], "--max-age"
            ),
            (
                [
                    "verify", "--public-key", CLI.fixture("docs-demo-global-public.pem"), "--max-age", "-1",
                    CLI.fixture("reply-800.json"),
                ], "--max-age"
            ),
            (["prune", "--db", db, "--keep-evidence", "-1"], "--keep-evidence"),
            (["prune", "--db", db, "--keep-evidence", "nan"], "--keep-evidence"),
            (["sandbox", "--state-dir", dir.path + "/sbx", "--port", "70000"], "--port"),
            (["sandbox", "--state-dir", dir.path + "/sbx", "--generate-keys", "1000000000"], "--generate-keys"),
            (["sandbox", "--state-dir", dir.path + "/sbx", "--rate", "inf", "--burst", "2"], "--rate"),
            (["sandbox", "--state-dir", dir.path + "/sbx", "--rate", "5", "--burst", "0"], "--burst"),
            (["sandbox", "--state-dir", dir.path + "/sbx", "--fail-5xx", "2"], "--fail-5xx"),
            (["sandbox", "--state-dir", dir.path + "/sbx", "--stale", "nan"], "--stale"),
            (["sandbox", "--state-dir", dir.path + "/sbx", "--drop-after", "-0.5"], "--drop-after"),
            (["sandbox", "--state-dir", dir.path + "/sbx", "--latency", "5-99999999"], "--latency"),
            (["sandbox", "--state-dir", dir.path + "/sbx", "--string-code", "2"], "--string-code"),
            (["sandbox", "--state-dir", dir.path + "/sbx", "--undocumented-code", "nan"], "--undocumented-code"),
            (["sandbox", "--state-dir", dir.path + "/sbx", "--retry-after", "1e12"], "--retry-after"),
        ]
        for (arguments, flag) in cases {
            // An API key is set: without the check, run and sync would go on to open the database.
            let result = try CLI.run(arguments, environment: ["KEYASSIGN_API_KEY": "k"], timeout: 30)
            #expect(result.status == 64, "\(arguments): \(result.status) \(result.stderr)")
            #expect(result.stderr.contains(flag), "\(arguments): \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: db), "\(arguments) created the database")
            #expect(
                !FileManager.default.fileExists(atPath: dir.path + "/sbx"), "\(arguments) created the sandbox state")
        }
    }

    @Test func theHelpStatesTheRanges() throws {
        let run = try CLI.run(["run", "--help"])
        #expect(run.stdout.contains(FlagRange.timeout.text))
        #expect(run.stdout.contains(FlagRange.concurrency.text))
        let importHelp = try CLI.run(["import", "--help"])
        #expect(importHelp.stdout.contains(FlagRange.settle.text))
    }

    @Test func anAPIKeyWithAControlCharacterIsRefusedFromEitherSource() throws {
        let dir = try TemporaryDirectory()
        let db = dir.path + "/k.sqlite"
        let secret = "sEcReT"
        for bad in ["\(secret)\r\nX-Injected: 1", "\(secret)\tmore", "\(secret)\u{7F}", "\(secret)\u{85}x"] {
            let fromEnvironment = try CLI.run(
                runArguments("run", db: db, extra: []),
                environment: ["KEYASSIGN_API_KEY": bad], timeout: 30)
            #expect(
                fromEnvironment.status == 78,
                "\(bad.debugDescription): \(fromEnvironment.status) \(fromEnvironment.stderr)")
            #expect(
                fromEnvironment.stderr.contains("$KEYASSIGN_API_KEY")
                    && fromEnvironment.stderr.contains("control character"))
            #expect(!fromEnvironment.stderr.contains(secret))

            let file = dir.path + "/api-key"
            try Data((bad + "\n").utf8).write(to: URL(fileURLWithPath: file))
            let fromFile = try CLI.run(runArguments("run", db: db, extra: ["--api-key-file", file]), timeout: 30)
            #expect(fromFile.status == 78, "\(bad.debugDescription): \(fromFile.status) \(fromFile.stderr)")
            #expect(!fromFile.stderr.contains(secret))
        }
        #expect(!FileManager.default.fileExists(atPath: db))
    }
}
