import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

@Suite struct RunnerRateAndSecretTests {
    @Test func a429PausesEverySenderAndDoesNotCountAsAnAttempt() throws {
        var faults = SandboxConfiguration.Faults()
        faults.fail429 = 0.5
        faults.seed = 11
        let bench = try RunnerBench(inventory: 8)
        try bench.restart(faults: faults)
        // One attempt each: a 429 must not use it up.
        let result = try bench.run(["--max-attempts", "1", "--concurrency", "2"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 8])
        let limited = try bench.count(
            "SELECT count(*) FROM attempts WHERE outcome = 'rate_limited' AND http_status = 429")
        #expect(limited > 0)
        #expect(try bench.count("SELECT count(*) FROM work WHERE attempts <> 1") == 0)
        // That the pause is shared (no sender starts a request until it ends) is a rule about
        // time: RunStateMachineTests.pause holds it on a clock the test controls, and
        // scripts/simulate in every window (`sent-during-pause`).
    }

    @Test func theServersRateLimitIsRespectedWithSharedPauses() throws {
        // Half the server's rate, and a server burst that absorbs a stall of a few hundred
        // milliseconds on a loaded test machine: what is checked is that the client paces
        // itself (unpaced, 30 rows at concurrency 8 meet 429s at once), not how quiet the
        // machine is.
        let bench = try RunnerBench(inventory: 30, rateLimit: .init(rate: 20, burst: 5))
        let result = try bench.run(["--rate", "10", "--burst", "2", "--concurrency", "8"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 30])
        #expect(bench.server.ledger().rateLimited == 0)
        // How fast the requests left is a benchmark's figure, not a test's: that no window holds
        // more than --burst + --rate x its length is held on simulated time (RunnerPartsTests'
        // token bucket, RunStateMachineTests' pacing, scripts/simulate's `rate-exceeded`).
    }

    @Test func theAPIKeyAppearsNowhere() throws {
        let secret = "3f6c0b1e-SECRET-\(UUID().uuidString)"
        var faults = SandboxConfiguration.Faults()
        faults.fail5xx = 0.3
        faults.badSignature = 0.2
        faults.seed = 5
        let bench = try RunnerBench(inventory: 20, unknown: 3, apiKey: secret)
        try bench.restart(faults: faults)
        let keyFile = bench.dir.path + "/key"
        try (secret + "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
        let summaryPath = bench.dir.path + "/summary.json"
        let result = try CLI.run(
            bench.runArguments([
                "--api-key-file", keyFile, "--summary-json", summaryPath,
                "--max-attempts", "2",
            ]))
        #expect(result.status == 1 || result.status == 0, "stderr: \(result.stderr)")
        #expect(try bench.count("SELECT count(*) FROM work WHERE state = 'assigned'") > 0)
        #expect(!result.stdout.contains(secret) && !result.stderr.contains(secret))
        #expect(!result.stderr.contains("SECRET"))
        for file in [bench.db, bench.db + "-wal", bench.db + "-shm", summaryPath] {
            let bytes = (try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data()
            #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(file) holds the API key")
            #expect(bytes.range(of: Data("SECRET".utf8)) == nil, "\(file) holds part of the API key")
        }
    }

    @Test func configurationErrorsExit78() throws {
        let bench = try RunnerBench(inventory: 1)
        var args = bench.runArguments([])
        let missing = try CLI.run(args)
        #expect(missing.status == 78)
        #expect(missing.stderr.contains("KEYASSIGN_API_KEY"))
        let env = ["KEYASSIGN_API_KEY": bench.server.apiKey]
        #expect(try CLI.run(bench.runArguments(["--ca-file", "/x.pem"]), environment: env).status == 78)
        #expect(
            try CLI.run(bench.runArguments(["--public-key", bench.dir.path + "/nope.pem"]), environment: env).status
                == 78)
        args[2] = "http://licenses.example.com"
        let insecure = try CLI.run(args, environment: env)
        #expect(insecure.status == 78)
        #expect(insecure.stderr.contains("clear text"))
        #expect(try CLI.run(bench.runArguments(["--body", "xml"]), environment: env).status == 64)
        #expect(try CLI.run(["run", "--help"]).stdout.contains("(values: form, json; default: form)"))
        #expect(try bench.stateCounts() == ["pending": 1])
    }

    @Test func jsonBodiesWorkToo() throws {
        let bench = try RunnerBench(inventory: 3, unknown: 1)
        let result = try bench.run(["--body", "json"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 3, "rejected": 1])
        #expect(bench.server.ledger().keys[bench.inventory[2]]?.ownerName == "Doe, Jane 2")
    }

    @Test func syncImportsThenRunsAndReportsABadFile() throws {
        let bench = try RunnerBench(inventory: 4)
        let more = (0..<2).map { _ in UUID().uuidString.lowercased() }
        let file = bench.dir.path + "/more.csv"
        try ("license_key,owner_name,email\n" + more.map { "\($0),Ann,ann@example.com" }.joined(separator: "\n") + "\n")
            .write(toFile: file, atomically: true, encoding: .utf8)
        let bad = bench.dir.path + "/bad.csv"
        try "name,mail\nx,y\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let args = ["sync"] + Array(bench.runArguments([]).dropFirst()) + [file, bad]
        let result = try CLI.run(args, environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
        #expect(result.status == 65, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 4, "rejected": 2])
        let clean = try CLI.run(
            ["sync"] + Array(bench.runArguments([]).dropFirst()) + [file],
            environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
        #expect(clean.status == 0, "stderr: \(clean.stderr)")
    }
}
