import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Issue 11, item 1: a server that writes `"code":"800"` (a string of digits, as PHP does),
/// and escapes `/` as `\/` (as PHP's json_encode does), through verify, run and audit.
@Suite struct StringCodeTests {
    private func writeKey(_ dir: TemporaryDirectory) throws -> String {
        let path = dir.path + "/global.pem"
        try TestKeys.global.publicKeyPEM.write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    /// An envelope as PHP writes it: compact, string code, every `/` escaped.
    private func phpEnvelope(code: String, message: String = "License key assigned") throws -> String {
        let payload = #"{"code":\#(code),"message":"\#(message)","timestamp":1708999933}"#
        let signedText = Data(payload.utf8).base64EncodedString()
        let signature = try TestKeys.global.signBase64(signedText)
        func escaped(_ text: String) -> String { text.replacingOccurrences(of: "/", with: #"\/"#) }
        return
            #"{"response":\#(payload),"response_base64":"\#(escaped(signedText))","private_key_used":"global","signature":"\#(escaped(signature))"}"#
    }

    @Test func verifyTrustsACodeWrittenAsAStringOfDigits() throws {
        let dir = try TemporaryDirectory()
        let key = try writeKey(dir)
        let reply = dir.path + "/string-800.json"
        let text = try phpEnvelope(code: #""800""#, message: #"License key assigned \/ ok"#)
        // Slashes escaped in the signed payload (the message) and, almost surely, in the
        // base64 strings; the signature is over the base64 text with its escapes undone.
        #expect(text.contains(#"\/"#), "the test envelope must carry escaped slashes")
        try text.write(toFile: reply, atomically: false, encoding: .utf8)
        let result = try CLI.run(["verify", "--public-key", key, reply])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "\(reply)\ttrusted\tok\t800\n")
    }

    @Test func verifyRefusesStringsThatAreNotPlainDigits() throws {
        let dir = try TemporaryDirectory()
        let key = try writeKey(dir)
        let cases: [(String, String)] = [
            (#""-800""#, #"got "-800""#),
            (#""+800""#, #"got "+800""#),
            (#"" 800""#, #"got " 800""#),
            (#""800.0""#, #"got "800.0""#),
            (#""8e2""#, #"got "8e2""#),
            (#""""#, "got an empty string"),
            (#""\u0038\u0030\u0030x""#, #"got "800x""#),
            // Arabic-Indic digits are digits to Unicode, not to a status code.
            (#""\u0668\u0660\u0660""#, #"got "٨٠٠""#),
            (#""1234567890""#, "a string of 10 digits, more than 9"),
            (#""99999999999999999999999999""#, "a string of 26 digits"),
            ("99999999999999999999999999", "code (integer; got 999999999999999999999999)"),
            ("800.0", "code (integer; got 800.0)"),
            ("null", "code (integer or string of digits)"),
        ]
        for (index, (code, expected)) in cases.enumerated() {
            let reply = dir.path + "/bad-\(index).json"
            try phpEnvelope(code: code).write(toFile: reply, atomically: false, encoding: .utf8)
            let result = try CLI.run(["verify", "--public-key", key, reply])
            #expect(result.status == 2, "\(code): \(result.stdout) \(result.stderr)")
            #expect(result.stdout == "\(reply)\tuntrusted\tpayload_missing_fields\t-\n", "\(code)")
            #expect(result.stderr.contains(expected), "\(code): \(result.stderr)")
        }
        // Leading zeros are still digits: "0800" is code 800 written oddly, not a forgery.
        let padded = dir.path + "/padded.json"
        try phpEnvelope(code: #""0800""#).write(toFile: padded, atomically: false, encoding: .utf8)
        #expect(try CLI.run(["verify", "--public-key", key, padded]).stdout.hasSuffix("\ttrusted\tok\t800\n"))
    }

    @Test func stringCodeMustMatchTheUnsignedCopyExactly() throws {
        // The unsigned copy says 800 as a number while the signed payload says "800": the
        // reply was altered somewhere, even though both mean 800.
        var builder = EnvelopeBuilder()
        builder.payload = #"{"code":"800","message":"License key assigned","timestamp":1708999933}"#
        builder.response = #"{"code":800,"message":"License key assigned","timestamp":1708999933}"#
        let verifier = ReplyVerifier(keyRing: try TestKeys.ring())
        guard case .untrusted(.payloadMismatch, _) = verifier.verify(try builder.bytes()) else {
            Issue.record("a string code and a number code compared equal")
            return
        }
    }

    @Test func runAgainstAServerWritingMostCodesAsStringsEndsEveryRowRight() throws {
        var faults = SandboxConfiguration.Faults()
        faults.stringCode = 0.8
        faults.seed = 11
        let bench = try RunnerBench(inventory: 40, unknown: 10, faults: faults)
        try bench.server.preassign(key: bench.inventory[0])
        let result = try bench.run()
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 39, "rejected": 11])
        // The sandbox really did write string codes, and every reply was trusted.
        let ledger = bench.server.ledger()
        #expect(ledger.faults.stringCode >= 25, "string codes sent: \(ledger.faults.stringCode)")
        #expect(try bench.count("SELECT count(*) FROM attempts") == 50)
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE verdict = 'trusted'") == 50)
        // Kept as signed: the payload's string code, for each attempt that got one.
        #expect(
            try bench.count(
                #"""
                SELECT count(*) FROM attempts a JOIN signed_replies r ON r.id = a.signed_reply_id
                WHERE CAST(r.payload AS TEXT) LIKE '%"code":"80_"%'
                """#)
                == ledger.faults.stringCode)
        // Every one compact, those whose envelope wrote `/` as `\/` too: audit re-verifies them.
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE reply IS NOT NULL") == 0)

        let audit = try CLI.run(["audit", "--db", bench.db, "--public-key", bench.server.publicKeyPath])
        #expect(audit.status == 0, "\(audit.stdout)\(audit.stderr)")
        #expect(audit.stderr.contains("50 stored replies"), "\(audit.stderr)")
        #expect(audit.stderr.contains(" 0 discrepancies"), "\(audit.stderr)")
    }

    @Test func sandboxEscapesSlashesByDefaultAndWritesStringCodesOnRequest() async throws {
        let escaped = try RunningSandbox(keys: ["K-1"]) { $0.faults.stringCode = 1 }
        let reply = try await SandboxHTTP.post(
            escaped.assignURL, form: [("api_key", escaped.server.apiKey), ("license_key", "K-1")])
        let body = String(decoding: reply.body, as: UTF8.self)
        #expect(body.contains(#""code":"800""#), "\(body)")
        // Base64 and signatures are full of slashes; PHP writes each as \/.
        #expect(body.contains(#"\/"#), "\(body)")
        #expect(!body.replacingOccurrences(of: #"\/"#, with: "").contains("/"), "\(body)")
        guard case .trusted(let payload) = escaped.verifier.verify(reply.body, maxAge: nil) else {
            Issue.record("string-code reply does not verify: \(body)")
            return
        }
        #expect(payload.code == 800)

        let plain = try RunningSandbox(keys: ["K-2"]) { $0.escapesSlashes = false }
        let plainReply = try await SandboxHTTP.post(
            plain.assignURL, form: [("api_key", plain.server.apiKey), ("license_key", "K-2")])
        let plainBody = String(decoding: plainReply.body, as: UTF8.self)
        #expect(!plainBody.contains(#"\/"#) && plainBody.contains(#""code":800,"#), "\(plainBody)")
        guard case .trusted = plain.verifier.verify(plainReply.body, maxAge: nil) else {
            Issue.record("unescaped reply does not verify")
            return
        }
    }

    @Test func sandboxCommandTakesTheNewFlags() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path + "/state"
        let bad = try CLI.run(["sandbox", "--state-dir", state, "--string-code", "1.5"])
        #expect(bad.status == 64 && bad.stderr.contains("string-code"), "\(bad.stderr)")
        let badEcho = try CLI.run(["sandbox", "--state-dir", state, "--echo-error", "-1"])
        #expect(badEcho.status == 64 && badEcho.stderr.contains("echo-error"), "\(badEcho.stderr)")
        let badName = try CLI.run(["sandbox", "--state-dir", state, "--key-name", "two words"])
        #expect(badName.status == 64 && badName.stderr.contains("key name"), "\(badName.stderr)")

        let process = try CLI.start([
            "sandbox", "--state-dir", state, "--generate-keys", "2", "--string-code", "1",
            "--key-name", "product", "--no-escape-slashes",
        ])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: state + "/port") && Date() < deadline && process.isRunning {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        let port = try #require(
            Int(
                try String(contentsOfFile: state + "/port", encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines)))
        let apiKey = try String(contentsOfFile: state + "/api-key", encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)
        let key = try #require(
            try String(contentsOfFile: state + "/keys.txt", encoding: .utf8).split(separator: "\n").first)
        let reply = try await SandboxHTTP.post(
            URL(string: "http://127.0.0.1:\(port)/api/v1/assign-license-key")!,
            form: [("api_key", apiKey), ("license_key", String(key))])
        let body = String(decoding: reply.body, as: UTF8.self)
        #expect(body.contains(#""code":"800""#) && body.contains(#""private_key_used":"product""#), "\(body)")
        #expect(!body.contains(#"\/"#), "\(body)")
        let saved = directory.path + "/reply.json"
        try Data(reply.body).write(to: URL(fileURLWithPath: saved))
        let verify = try CLI.run(["verify", "--public-key", "product=" + state + "/public.pem", saved])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        process.terminate()
        process.waitUntilExit()
    }
}
