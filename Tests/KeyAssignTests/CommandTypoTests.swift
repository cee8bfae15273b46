import Foundation
import Testing

/// Issue 20, item 8: a misspelt flag is named as such, with the nearest real one, rather
/// than reported as the required flag it was meant to be ("Missing expected argument").
@Suite struct CommandTypoTests {
    @Test(arguments: [
        (
            ["run", "--sever", "http://127.0.0.1:1", "--public-key", "k.pem"],
            "unknown option '--sever'; did you mean '--server'?"
        ),
        (
            ["sync", "x.csv", "--server=http://127.0.0.1:1", "--publik-key", "k.pem"],
            "unknown option '--publik-key'; did you mean '--public-key'?"
        ),
        (["import", "--mapp", "owner_name=Kunde", "x.csv"], "unknown option '--mapp'; did you mean '--map'?"),
        (["report", "--delimeter", "semicolon"], "unknown option '--delimeter'; did you mean '--delimiter'?"),
        (["retry", "--sorce", "x.csv"], "unknown option '--sorce'; did you mean '--source'?"),
    ])
    func aMisspeltOptionIsNamedWithTheNearestOne(arguments: [String], message: String) throws {
        let result = try CLI.run(arguments)
        #expect(result.status == 64)
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(!result.stderr.contains("Missing expected argument"))
    }

    @Test func otherUsageErrorsAreTheParsersOwn() throws {
        let missing = try CLI.run(["run", "--public-key", "k.pem"])
        #expect(missing.status == 64)
        #expect(missing.stderr.contains("Missing expected argument '--server"), "\(missing.stderr)")
        let far = try CLI.run(["status", "--zzzzzzzz"])
        #expect(far.status == 64)
        #expect(
            far.stderr.contains("unknown option '--zzzzzzzz' (keyassign status --help lists its options)"),
            "\(far.stderr)")
        // A value after `--` is an argument, never an option.
        let dir = try TemporaryDirectory()
        let history = try CLI.run(["history", "--db", dir.path + "/none.sqlite", "--", "--sever"])
        #expect(!history.stderr.contains("unknown option"))
    }
}
