import Foundation
import Testing

@testable import KeyAssign

@Suite struct SignatureVerifyCommandTests {
    private let key = CLI.fixture("docs-demo-global-public.pem")

    private func verify(_ replies: [String], extra: [String] = []) throws -> CLI.Result {
        try CLI.run(["verify", "--public-key", key] + extra + replies)
    }

    @Test func documentedRepliesAreTrusted() throws {
        let result = try verify([CLI.fixture("reply-800.json"), CLI.fixture("reply-801.json")])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            result.stdout
                == "\(CLI.fixture("reply-800.json"))\ttrusted\tok\t800\n\(CLI.fixture("reply-801.json"))\ttrusted\tok\t801\n"
        )
        #expect(result.stderr.isEmpty)
    }

    @Test func flippedSignatureExits1() throws {
        let result = try verify([CLI.fixture("reply-800-signature-flipped.json")])
        #expect(result.status == 1)
        #expect(result.stdout == "\(CLI.fixture("reply-800-signature-flipped.json"))\tuntrusted\tbad_signature\t-\n")
        #expect(result.stderr.contains("reply-800-signature-flipped.json: the signature does not match"))
    }

    @Test func swappedResponseExits2() throws {
        let result = try verify([CLI.fixture("reply-800-response-swapped.json")])
        #expect(result.status == 2)
        #expect(result.stdout.contains("\tuntrusted\tpayload_mismatch\t-"))
    }

    @Test func mixedFilesEndWithTheWorseStatus() throws {
        let payloadOnly = try verify([CLI.fixture("reply-800.json"), CLI.fixture("reply-800-response-swapped.json")])
        #expect(payloadOnly.status == 2)
        let both = try verify([
            CLI.fixture("reply-800-response-swapped.json"), CLI.fixture("reply-800-signature-flipped.json"),
            CLI.fixture("reply-801.json"),
        ])
        #expect(both.status == 1)
        // Every file still gets its line, in order.
        #expect(
            both.stdout.split(separator: "\n").map { $0.split(separator: "\t").dropFirst(2).first } == [
                "payload_mismatch", "bad_signature", "ok",
            ])
    }

    @Test func unreadableReplyIsUntrustedAndOthersAreStillChecked() throws {
        let dir = try TemporaryDirectory()
        let result = try verify([dir.path + "/missing.json", CLI.fixture("reply-800.json")])
        #expect(result.status == 1)
        #expect(
            result.stdout
                == "\(dir.path)/missing.json\tuntrusted\tunreadable\t-\n\(CLI.fixture("reply-800.json"))\ttrusted\tok\t800\n"
        )
        #expect(result.stderr.contains("missing.json: cannot read it (No such file or directory)"))
    }

    @Test func maxAgeMakesOldRepliesStale() throws {
        let result = try verify([CLI.fixture("reply-800.json")], extra: ["--max-age", "300"])
        #expect(result.status == 2)
        #expect(result.stdout.contains("\tuntrusted\tstale\t-"))
        let negative = try verify([CLI.fixture("reply-800.json")], extra: ["--max-age", "-1"])
        #expect(negative.status == 64)
    }

    @Test func freshCraftedReplyPassesMaxAge() throws {
        let dir = try TemporaryDirectory()
        let keyPath = dir.path + "/pub.pem"
        try TestKeys.global.publicKeyPEM.write(toFile: keyPath, atomically: false, encoding: .utf8)
        var builder = EnvelopeBuilder()
        builder.payload = #"{"code":800,"message":"ok","timestamp":\#(Int64(Timestamps.now()))}"#
        try builder.json().write(toFile: dir.path + "/r.json", atomically: false, encoding: .utf8)
        let result = try CLI.run([
            "verify", "--public-key", "global=" + keyPath, "--max-age", "120", dir.path + "/r.json",
        ])
        #expect(result.status == 0, "\(result.stderr)")
    }

    @Test func usageErrors() throws {
        #expect(try CLI.run(["verify", CLI.fixture("reply-800.json")]).status == 64)
        #expect(try CLI.run(["verify", "--public-key", key]).status == 64)
        let help = try CLI.run(["verify", "--help"])
        // Wrapped once, by the parser: the prose reads the same at any width.
        let prose = help.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ")
        #expect(prose.contains("tab-separated: FILE, VERDICT, REASON, CODE."))
    }
}
