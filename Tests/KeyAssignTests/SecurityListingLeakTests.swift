import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Issue 19, item 1: the API key never leaves through the listing call, and no encoding of it
/// (base64, hex) is kept from any reply. Each test drives the real binary against a sandbox
/// playing a hostile server, then looks for every echo of the key in stdout, stderr and the
/// database files (`runs.summary` and `attempts.reply` included).
@Suite struct SecurityListingLeakTests {
    static func secret() -> String { "ka-SECRET-\(UUID().uuidString)" }

    static func expectNoLeak(
        _ echoes: SecretEchoes, in texts: [(String, String)],
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        for (name, text) in texts {
            let leaked = echoes.leak(in: text)
            #expect(leaked == nil, "\(name) holds the API key as \(leaked ?? "")", sourceLocation: sourceLocation)
        }
    }

    @Test func aListingErrorPageEchoingTheAuthorizationHeaderLeavesTheKeyNowhere() throws {
        let secret = Self.secret()
        let bench = try RunnerBench(inventory: 2, unknown: 1, apiKey: secret)
        try bench.restart(listing: .echoError)
        // The run ends with a rejected row: its end-of-run reconciliation fetches the listing.
        let run = try bench.run()
        #expect(run.stderr.contains("cannot fetch the key listing: HTTP 500"), "\(run.stderr)")
        let reconcile = try bench.reconcile()
        #expect(reconcile.status == 1)
        #expect(
            reconcile.stderr.contains("HTTP 500") && reconcile.stderr.contains("[REDACTED: API key]"),
            "\(reconcile.stderr)")
        // The reconcile's runs row keeps the message, redacted.
        #expect(
            try bench.count(
                "SELECT count(*) FROM runs WHERE instr(summary, 'HTTP 500') > 0 AND instr(summary, 'REDACTED') > 0")
                == 1)
        Self.expectNoLeak(
            SecretEchoes(secret: secret),
            in: [
                ("run stderr", run.stderr), ("reconcile stderr", reconcile.stderr),
                ("reconcile stdout", reconcile.stdout),
            ]
                + (try SecretEchoes.databaseFiles(in: bench.dir.path)))
    }

    @Test func aListingWhosePrivateKeyUsedHoldsTheKeyLeavesItNowhere() throws {
        let secret = Self.secret()
        let bench = try RunnerBench(inventory: 2, unknown: 1, apiKey: secret)
        try bench.restart(listing: .keyInKeyName)
        let run = try bench.run()
        #expect(run.stderr.contains("the key listing does not verify (unknown_key)"), "\(run.stderr)")
        let reconcile = try bench.reconcile()
        #expect(reconcile.status == 78)
        #expect(reconcile.stderr.contains("signed with key \"[REDACTED: API key]\""), "\(reconcile.stderr)")
        Self.expectNoLeak(
            SecretEchoes(secret: secret),
            in: [("run stderr", run.stderr), ("reconcile stderr", reconcile.stderr)]
                + (try SecretEchoes.databaseFiles(in: bench.dir.path)))
    }

    /// A compromised server signs a listing whose owner name holds the key (as itself, or
    /// base64-encoded): it is refused whole, neither stored nor shown.
    @Test func aSignedListingHoldingTheKeyIsRefusedNotStored() throws {
        let secret = Self.secret()
        for owner in ["Eve " + secret, "Eve " + Data(secret.utf8).base64EncodedString()] {
            let bench = try RunnerBench(inventory: 2, apiKey: secret)
            try bench.server.preassign(key: bench.inventory[0], ownerName: owner, email: "eve@example.com")
            _ = try bench.run(["--no-reconcile"])
            #expect(try bench.states()[bench.inventory[0]] == "rejected")
            let reconcile = try bench.reconcile()
            #expect(reconcile.status == 1, "\(reconcile.stdout)")
            #expect(
                reconcile.stderr.contains("the signed key listing holds the API key; it is refused, not stored"),
                "\(reconcile.stderr)")
            #expect(try bench.count("SELECT count(*) FROM listings") == 0)
            Self.expectNoLeak(
                SecretEchoes(secret: secret),
                in: [("reconcile stdout", reconcile.stdout), ("reconcile stderr", reconcile.stderr)]
                    + (try SecretEchoes.databaseFiles(in: bench.dir.path)))
        }
    }

    /// The assign path's debug page also shows the key base64-encoded and hex-dumped: the
    /// stored prefix of each page (`attempts.reply`) must hold neither.
    @Test func base64AndHexEchoesOfTheKeyAreNotStoredInAttempts() throws {
        let secret = Self.secret()
        var faults = SandboxConfiguration.Faults()
        faults.echoError = 0.5
        faults.seed = 7
        let bench = try RunnerBench(inventory: 6, faults: faults, apiKey: secret)
        let result = try bench.run(["--max-attempts", "30"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(
            try bench.count(
                "SELECT count(*) FROM attempts WHERE http_status = 500 AND instr(CAST(reply AS TEXT), 'PHP_AUTH (base64)') > 0"
            ) > 0)
        Self.expectNoLeak(
            SecretEchoes(secret: secret),
            in: [("run stderr", result.stderr)]
                + (try SecretEchoes.databaseFiles(in: bench.dir.path)))
    }

    /// The redactor itself, at every alignment and in both alphabets, padded or not, and hex
    /// in either case, inside longer text.
    @Test func theRedactorFindsEveryEncodingOfTheKey() throws {
        let secret = "Sk9fQ2xLw7Rt4ZpMv-secret-key-0123456789"
        let redactor = try #require(SecretRedactor(secret: secret))
        let bytes = Array(secret.utf8)
        var samples: [String] = []
        for prefix in ["", "a", "ab", "abc", "user:"] {
            let data = Data(Array(prefix.utf8) + bytes + Array("-tail".utf8))
            let standard = data.base64EncodedString()
            samples.append(standard)
            samples.append(standard.replacingOccurrences(of: "=", with: ""))
            samples.append(standard.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_"))
            samples.append(standard.replacingOccurrences(of: "/", with: "\\/"))
        }
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        samples += [hex, hex.uppercased()]
        let echoes = SecretEchoes(secret: secret)
        for sample in samples {
            let text = "<td>Authorization echo: \(sample)</td>"
            let redacted = redactor.redact(text)
            #expect(redacted.contains("[REDACTED: API key]"), "not found in \(sample)")
            #expect(echoes.leak(in: redacted) == nil, "left in \(redacted)")
        }
        // Ordinary base64 and hex are left alone.
        let other = Data("another text altogether, long enough".utf8)
        #expect(redactor.redact(other.base64EncodedString()) == other.base64EncodedString())
        #expect(redactor.redact("deadbeef00112233445566778899") == "deadbeef00112233445566778899")
    }
}
