import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Issue 11, item 7: a vendor with two products, each with its own key pair, gets replies
/// that all say `"private_key_used": "product"`. Both keys go under that name; a reply is
/// trusted when either verifies it, and the verdict records which one did.
@Suite struct SharedKeyNameTests {
    /// SHA-256 of the key's DER SubjectPublicKeyInfo, computed by the openssl CLI.
    private func opensslFingerprint(_ pem: String, _ dir: TemporaryDirectory) throws -> String {
        let der = dir.path + "/\(UUID().uuidString).der"
        let converted = try OpenSSLCLI.run(["pkey", "-pubin", "-in", pem, "-outform", "DER", "-out", der])
        #expect(converted.status == 0, "\(converted.output)")
        let digest = try OpenSSLCLI.run(["dgst", "-sha256", "-r", der])
        return String(digest.output.prefix { $0 != " " })
    }

    private func write(_ text: String, _ path: String) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    @Test func verifyTrustsAReplySignedByAnyKeyOfItsName() throws {
        let dir = try TemporaryDirectory()
        try write(TestKeys.global.publicKeyPEM, dir.path + "/a.pem")
        try write(TestKeys.other2048.publicKeyPEM, dir.path + "/b.pem")
        try write(TestKeys.big4096.publicKeyPEM, dir.path + "/c.pem")
        for (name, signer) in [("by-a", TestKeys.global), ("by-b", TestKeys.other2048), ("by-c", TestKeys.big4096)] {
            var builder = EnvelopeBuilder()
            builder.keyName = "product"
            builder.signer = signer
            try write(try builder.json(), dir.path + "/\(name).json")
        }
        let two = ["--public-key", "product=" + dir.path + "/a.pem", "--public-key", "product=" + dir.path + "/b.pem"]
        let trusted = try CLI.run(["verify"] + two + [dir.path + "/by-a.json", dir.path + "/by-b.json"])
        #expect(trusted.status == 0, "\(trusted.stderr)")
        #expect(trusted.stdout == "\(dir.path)/by-a.json\ttrusted\tok\t800\n\(dir.path)/by-b.json\ttrusted\tok\t800\n")

        // Signed by a third key nobody configured: untrusted, as before (a 4096-bit
        // signature matches neither 2048-bit key's length).
        let third = try CLI.run(["verify"] + two + [dir.path + "/by-c.json"])
        #expect(third.status == 1)
        #expect(third.stdout == "\(dir.path)/by-c.json\tuntrusted\tsignature_wrong_length\t-\n")
        var forged = EnvelopeBuilder()
        forged.keyName = "product"
        forged.signer = try ReplySigner.generate(bits: 2048)
        try write(try forged.json(), dir.path + "/by-unknown.json")
        let unknown = try CLI.run(["verify"] + two + [dir.path + "/by-unknown.json"])
        #expect(unknown.status == 1)
        #expect(unknown.stdout == "\(dir.path)/by-unknown.json\tuntrusted\tbad_signature\t-\n")
        #expect(unknown.stderr.contains(#"under key "product" (none of its 2 keys)"#), "\(unknown.stderr)")

        // Keys of different sizes under one name: each reply is checked against the one
        // its signature's length fits.
        let mixed = try CLI.run([
            "verify", "--public-key", "product=" + dir.path + "/a.pem",
            "--public-key", "product=" + dir.path + "/c.pem",
            dir.path + "/by-c.json", dir.path + "/by-a.json", dir.path + "/by-b.json",
        ])
        #expect(mixed.status == 1)
        #expect(
            mixed.stdout.split(separator: "\n").map { $0.split(separator: "\t")[2] } == ["ok", "ok", "bad_signature"])
    }

    @Test func theSameKeyTwiceUnderOneNameIsRefused() throws {
        let dir = try TemporaryDirectory()
        try write(TestKeys.global.publicKeyPEM, dir.path + "/a.pem")
        try write(TestKeys.global.publicKeyPEM, dir.path + "/copy.pem")
        let result = try CLI.run([
            "verify", "--public-key", "product=" + dir.path + "/a.pem",
            "--public-key", "product=" + dir.path + "/copy.pem", CLI.fixture("reply-800.json"),
        ])
        #expect(result.status == 64)
        #expect(result.stderr.contains("public key \(dir.path)/copy.pem: the same key (sha256:"), "\(result.stderr)")
        #expect(result.stderr.contains("as public key \(dir.path)/a.pem, both named 'product'"), "\(result.stderr)")
        // The same key under two names is fine: a server may sign with one pair for both.
        let ok = try CLI.run([
            "verify", "--public-key", "product=" + CLI.fixture("docs-demo-global-public.pem"),
            "--public-key", CLI.fixture("docs-demo-global-public.pem"), CLI.fixture("reply-800.json"),
        ])
        #expect(ok.status == 0, "\(ok.stderr)")
    }

    @Test func runsTrustEitherProductKeyAndAuditAndHistoryNameIt() throws {
        // Product A's server (the bench's sandbox), product B's, and an impostor C, all
        // signing as "product", each with its own key pair; one database.
        let bench = try RunnerBench(inventory: 4)
        bench.configuration.keyName = "product"
        try bench.restart()
        let batchB = (0..<3).map { _ in "B-" + UUID().uuidString.lowercased() }
        let batchC = (0..<2).map { _ in "C-" + UUID().uuidString.lowercased() }
        let productB = try RunningSandbox(keys: batchB) { $0.keyName = "product" }
        let impostor = try RunningSandbox(keys: batchC) { $0.keyName = "product" }
        let keyA = bench.server.publicKeyPath
        let keyB = productB.server.publicKeyPath
        let keys = ["--public-key", "product=" + keyA, "--public-key", "product=" + keyB]
        func run(against server: SandboxServer) throws -> CLI.Result {
            try CLI.run(
                [
                    "run", "--server", server.baseURL, "--db", bench.db, "--rate", "0", "--max-attempts", "2",
                    "--backoff-base", "0.02", "--backoff-cap", "0.1", "--timeout", "5",
                ] + keys,
                environment: ["KEYASSIGN_API_KEY": server.apiKey])
        }

        let first = try run(against: bench.server)
        #expect(first.status == 0, "\(first.stderr)")
        try bench.importRows(batchB, file: "b.csv")
        let second = try run(against: productB.server)
        #expect(second.status == 0, "replies signed by the second product key: \(second.stderr)")
        try bench.importRows(batchC, file: "c.csv")
        let third = try run(against: impostor.server)
        #expect(third.status == 1, "\(third.stderr)")
        let states = try bench.states()
        #expect(bench.inventory.allSatisfy { states[$0] == "assigned" })
        #expect(batchB.allSatisfy { states[$0] == "assigned" })
        // The impostor may well have assigned them: uncertain, never failed (issue 18).
        #expect(batchC.allSatisfy { states[$0] == "uncertain" }, "\(states)")
        #expect(
            try bench.count(
                "SELECT count(*) FROM attempts WHERE verdict = 'bad_signature' AND signing_key_sha256 IS NULL") == 4)

        // The verdict names the key that verified each reply: file and fingerprint.
        let scratch = try TemporaryDirectory()
        let fingerprintA = try opensslFingerprint(keyA, scratch)
        let fingerprintB = try opensslFingerprint(keyB, scratch)
        #expect(fingerprintA.count == 64 && fingerprintA != fingerprintB)
        let db = try bench.open()
        let byKey = try db.prepare(
            """
            SELECT w.license_key, k.file, k.sha256 FROM attempts a JOIN work w ON w.id = a.work_id
                JOIN signed_replies r ON r.id = a.signed_reply_id JOIN signing_keys k ON k.id = r.signing_key_id
            WHERE a.verdict = 'trusted'
            """)
        var recorded = 0
        while try byKey.step() {
            let isB = (byKey.string(0) ?? "").hasPrefix("B-")
            #expect(byKey.string(1) == (isB ? keyB : keyA))
            #expect(byKey.string(2) == (isB ? fingerprintB : fingerprintA))
            recorded += 1
        }
        #expect(recorded == 7)

        let history = try CLI.run(["history", "--db", bench.db, batchB[0]])
        #expect(history.status == 0)
        #expect(history.stdout.contains("\tassigned\ttrusted\tsha256:\(fingerprintB) (\(keyB))\t"), "\(history.stdout)")
        let historyA = try CLI.run(["history", "--db", bench.db, bench.inventory[0]])
        #expect(historyA.stdout.contains("\ttrusted\tsha256:\(fingerprintA) (\(keyA))\t"), "\(historyA.stdout)")
        let historyC = try CLI.run(["history", "--db", bench.db, batchC[0]])
        #expect(historyC.stdout.contains("\tbad_signature\t-\t"), "\(historyC.stdout)")

        let audit = try CLI.run(["audit", "--db", bench.db] + keys)
        #expect(audit.status == 0, "\(audit.stdout)\(audit.stderr)")
        #expect(
            audit.stderr.contains("audit: 4 stored replies verified by product sha256:\(fingerprintA) (\(keyA))"),
            "\(audit.stderr)")
        #expect(
            audit.stderr.contains("audit: 3 stored replies verified by product sha256:\(fingerprintB) (\(keyB))"),
            "\(audit.stderr)")

        // Without product B's key, its rows are not backed, and audit says which key was.
        let auditA = try CLI.run(["audit", "--db", bench.db, "--public-key", "product=" + keyA])
        #expect(auditA.status == 1)
        #expect(auditA.stdout.contains("\(batchB[0]): attempt "), "\(auditA.stdout)")
        #expect(
            auditA.stdout.contains("key sha256:\(fingerprintB) (\(keyB)) verified it when it arrived"),
            "\(auditA.stdout)")

        // A database edited to name the wrong key for a reply is caught.
        try db.execute(
            """
            UPDATE signing_keys SET sha256 = '\(fingerprintA)' WHERE id = (
                SELECT r.signing_key_id FROM attempts a JOIN signed_replies r ON r.id = a.signed_reply_id
                WHERE a.work_id = (SELECT id FROM work WHERE license_key = '\(batchB[1])'))
            """)
        let edited = try CLI.run(["audit", "--db", bench.db] + keys)
        #expect(edited.status == 1)
        #expect(
            edited.stdout.contains("\(batchB[1]): attempt ")
                && edited.stdout.contains("is recorded as verified by key sha256:\(fingerprintA)"),
            "\(edited.stdout)")
    }
}
