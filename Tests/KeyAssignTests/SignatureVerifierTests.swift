import Foundation
import Synchronization
import Testing

@testable import KeyAssign

@Suite struct SignatureVerifierTests {
    private let verifier: ReplyVerifier

    init() throws {
        verifier = ReplyVerifier(keyRing: try TestKeys.ring())
    }

    private var globalKey: SigningKey? { verifier.keyRing.signingKeys.first }

    private func reason(_ builder: EnvelopeBuilder, maxAge: Double? = nil, now: Double = 1_708_999_933) throws
        -> UntrustedReason?
    {
        reason(try builder.bytes(), maxAge: maxAge, now: now)
    }

    private func reason(_ bytes: [UInt8], maxAge: Double? = nil, now: Double = 1_708_999_933) -> UntrustedReason? {
        if case .untrusted(let reason, _) = verifier.verify(bytes, maxAge: maxAge, now: now) { return reason }
        return nil
    }

    @Test func theDocumentedFixturesVerify() throws {
        let ring = try KeyRing(specs: [CLI.fixture("docs-demo-global-public.pem")])
        let verifier = ReplyVerifier(keyRing: ring)
        func bytes(_ name: String) throws -> [UInt8] {
            Array(try Data(contentsOf: URL(fileURLWithPath: CLI.fixture(name))))
        }
        // The fingerprint is what `openssl pkey -pubin -outform DER | sha256sum` prints for it.
        let demoKey = SigningKey(
            name: "global", file: CLI.fixture("docs-demo-global-public.pem"),
            sha256: "1344107e5f0147b3aedeab04896b8f5b3e4b89d1e117238b26743f0dc973b41b")
        #expect(
            verifier.verify(try bytes("reply-800.json"))
                == .trusted(
                    SignedPayload(
                        code: 800, message: "License key assigned", timestamp: 1_708_999_933, keyName: "global",
                        signingKey: demoKey)))
        #expect(
            verifier.verify(try bytes("reply-801.json"))
                == .trusted(
                    SignedPayload(
                        code: 801, message: "Invalid or already assigned license key", timestamp: 1_708_999_873,
                        keyName: "global", signingKey: demoKey)))
        guard case .untrusted(.badSignature, _) = verifier.verify(try bytes("reply-800-signature-flipped.json")) else {
            Issue.record("flipped signature was not refused")
            return
        }
        guard case .untrusted(.payloadMismatch, _) = verifier.verify(try bytes("reply-800-response-swapped.json"))
        else {
            Issue.record("swapped response was not refused")
            return
        }
    }

    @Test func aCraftedReplyIsTrusted() throws {
        #expect(
            verifier.verify(try EnvelopeBuilder().bytes())
                == .trusted(
                    SignedPayload(
                        code: 800, message: "License key assigned", timestamp: 1_708_999_933, keyName: "global",
                        signingKey: globalKey)))
    }

    @Test func phpEscapesAreReadAsTheSameValues() throws {
        // PHP's json_encode escapes "/" as "\/" and non-ASCII as \u: the signed payload and
        // the unsigned copy may be spelled differently and still be the same JSON value.
        var builder = EnvelopeBuilder()
        builder.payload = #"{"code":150,"message":"Access denied \/ caf\u00e9 \ud83d\ude00","timestamp":1708999933}"#
        builder.response = #"{"timestamp":1708999933, "message":"Access denied / café 😀", "code":150}"#
        #expect(
            verifier.verify(try builder.bytes())
                == .trusted(
                    SignedPayload(
                        code: 150, message: "Access denied / café 😀", timestamp: 1_708_999_933, keyName: "global",
                        signingKey: globalKey)))
    }

    @Test func theSignedTextIsTheUnescapedJSONString() throws {
        // A base64 text with "/" that the envelope escapes as "\/": the signature is over the
        // unescaped string. Find a payload whose base64 contains "/".
        var builder = EnvelopeBuilder()
        var message = "x"
        while !Data(#"{"code":800,"message":"\#(message)","timestamp":1708999933}"#.utf8).base64EncodedString()
            .contains("/")
        {
            message += "?"
        }
        builder.payload = #"{"code":800,"message":"\#(message)","timestamp":1708999933}"#
        let escaped = try builder.json().replacingOccurrences(
            of: builder.signedText, with: builder.signedText.replacingOccurrences(of: "/", with: #"\/"#))
        #expect(escaped.contains(#"\/"#))
        guard case .trusted = verifier.verify(Array(escaped.utf8)) else {
            Issue.record("escaped response_base64 not trusted")
            return
        }
    }

    @Test func envelopeNotJSON() throws {
        #expect(reason(Array("garbage".utf8)) == .envelopeNotJSON)
        #expect(reason([]) == .envelopeNotJSON)
        #expect(reason(Array("[1,2]".utf8)) == .envelopeNotJSON)
        #expect(reason(Array(try EnvelopeBuilder().json().dropLast().utf8)) == .envelopeNotJSON)
        #expect(reason(Array((try EnvelopeBuilder().json() + "x").utf8)) == .envelopeNotJSON)
        // Invalid UTF-8 inside a string.
        var bytes = try EnvelopeBuilder().bytes()
        let index = try #require(bytes.firstIndex(of: UInt8(ascii: "L")))
        bytes[index] = 0xFF
        #expect(reason(bytes) == .envelopeNotJSON)
    }

    @Test func duplicateMembersAreRefused() throws {
        // A second response_base64 that some parsers would prefer over the signed one.
        let good = try EnvelopeBuilder().json()
        let forged = String(good.dropLast()) + #","response_base64":"eyJjb2RlIjo4MDB9"}"#
        #expect(reason(Array(forged.utf8)) == .envelopeNotJSON)
    }

    @Test func envelopeMissingFields() throws {
        let object = #"{"response":{"code":800},"response_base64":"eA==","private_key_used":"global"}"#
        #expect(reason(Array(object.utf8)) == .envelopeMissingFields)
        let wrongType = #"{"response":"800","response_base64":"eA==","private_key_used":"global","signature":"eA=="}"#
        #expect(reason(Array(wrongType.utf8)) == .envelopeMissingFields)
        let nullKey = #"{"response":{},"response_base64":"eA==","private_key_used":null,"signature":"eA=="}"#
        guard case .untrusted(.envelopeMissingFields, let detail) = verifier.verify(Array(nullKey.utf8)) else {
            Issue.record("null key name accepted")
            return
        }
        #expect(detail.contains("private_key_used"))
    }

    @Test func unknownKeyName() throws {
        var builder = EnvelopeBuilder()
        builder.keyName = "product"
        #expect(try reason(builder) == .unknownKey)
        builder.keyName = #"glo\u0007bal"#
        guard case .untrusted(.unknownKey, let detail) = verifier.verify(try builder.bytes()) else {
            Issue.record("control characters in the key name accepted")
            return
        }
        // Shown visibly (`TerminalText`), not as the control character.
        #expect(detail.contains("glo\\x07bal"))
    }

    @Test func privateKeyNotSetIsUnsigned() throws {
        var builder = EnvelopeBuilder()
        builder.signature = "Private key not set"
        #expect(try reason(builder) == .unsigned)
        builder.keyName = "nobody"
        #expect(try reason(builder) == .unsigned)
    }

    @Test func signatureNotBase64() throws {
        var builder = EnvelopeBuilder()
        for bad in ["@@@@", "abc", "ab=c", "ab==ab==", "Q5aC-pbd", #"Q5aC\npbd"#, "Q5aC pbd", "QQ=="] {
            builder.signature = bad
            let got = try reason(builder)
            // "QQ==" is valid base64 (one byte): wrong length, not bad base64.
            #expect(got == (bad == "QQ==" ? .signatureWrongLength : .signatureNotBase64), "\(bad)")
        }
        // Stray bits after the last byte ("QR==" decodes like "QQ==") have one spelling only.
        builder.signature = "QR=="
        #expect(try reason(builder) == .signatureNotBase64)
    }

    @Test func signatureWrongLength() throws {
        var builder = EnvelopeBuilder()
        builder.signer = TestKeys.big4096  // 512 bytes for a 256-byte key
        #expect(try reason(builder) == .signatureWrongLength)
        let good = try EnvelopeBuilder().signer.sign(Array(builder.signedText.utf8))
        builder.signature = Data(good.dropLast()).base64EncodedString()
        #expect(try reason(builder) == .signatureWrongLength)
        builder.signature = ""
        #expect(try reason(builder) == .signatureWrongLength)
    }

    @Test func badSignature() throws {
        var builder = EnvelopeBuilder()
        builder.signer = TestKeys.other2048
        #expect(try reason(builder) == .badSignature)
        // Signed bytes changed after signing.
        builder = EnvelopeBuilder()
        builder.signature = try TestKeys.global.signBase64(builder.signedText)
        builder.responseBase64 = Data(#"{"code":800,"message":"License key assigned","timestamp":1708999934}"#.utf8)
            .base64EncodedString()
        #expect(try reason(builder) == .badSignature)
    }

    @Test func payloadNotJSON() throws {
        var builder = EnvelopeBuilder()
        builder.payload = "800 assigned"
        builder.response = "{}"
        #expect(try reason(builder) == .payloadNotJSON)
        builder.payload = "[800]"
        #expect(try reason(builder) == .payloadNotJSON)
        // Signed text that is not base64 at all.
        builder = EnvelopeBuilder()
        builder.responseBase64 = "not base64!"
        #expect(try reason(builder) == .payloadNotJSON)
    }

    @Test func payloadMissingFields() throws {
        for payload in [
            #"{"message":"License key assigned","timestamp":1708999933}"#,
            #"{"code":800.0,"message":"License key assigned","timestamp":1708999933}"#,
            #"{"code":8e2,"message":"License key assigned","timestamp":1708999933}"#,
            // A string of digits is a code (StringCodeTests); anything looser is not.
            #"{"code":"-800","message":"License key assigned","timestamp":1708999933}"#,
            #"{"code":"","message":"License key assigned","timestamp":1708999933}"#,
            #"{"code":true,"message":"License key assigned","timestamp":1708999933}"#,
            #"{"code":99999999999999999999999999,"message":"x","timestamp":1708999933}"#,
            #"{"code":800,"message":null,"timestamp":1708999933}"#,
            #"{"code":800,"message":"x","timestamp":1.7e9}"#,
            #"{"code":800,"message":"x"}"#,
        ] {
            var builder = EnvelopeBuilder()
            builder.payload = payload
            #expect(try reason(builder) == .payloadMissingFields, "\(payload)")
        }
    }

    @Test func payloadMismatch() throws {
        for response in [
            #"{"code":801,"message":"License key assigned","timestamp":1708999933}"#,
            #"{"code":800,"message":"License key assigned","timestamp":1708999934}"#,
            #"{"code":800,"message":"License key assigned ","timestamp":1708999933}"#,
            #"{"code":800,"message":"License key assigned","timestamp":1708999933,"extra":1}"#,
            #"{"code":800,"message":"License key assigned"}"#,
            #"{}"#,
        ] {
            var builder = EnvelopeBuilder()
            builder.response = response
            #expect(try reason(builder) == .payloadMismatch, "\(response)")
        }
        // The same number spelled differently is the same JSON value.
        var builder = EnvelopeBuilder()
        builder.payload = #"{"code":800,"message":"m","timestamp":1708999933,"ratio":0.5}"#
        builder.response = #"{"code":800,"message":"m","timestamp":1708999933,"ratio":5e-1}"#
        #expect(try reason(builder) == nil)
    }

    @Test func staleOnlyWithMaxAge() throws {
        let builder = EnvelopeBuilder()
        let signedAt = 1_708_999_933.0
        #expect(try reason(builder, maxAge: nil, now: signedAt + 1e9) == nil)
        #expect(try reason(builder, maxAge: 300, now: signedAt + 300) == nil)
        #expect(try reason(builder, maxAge: 300, now: signedAt + 300.5) == .stale)
        #expect(try reason(builder, maxAge: 300, now: signedAt - 301) == .stale)  // from the future
        #expect(try reason(builder, maxAge: 0, now: signedAt) == nil)
        var extreme = EnvelopeBuilder()
        for timestamp in ["-9223372036854775808", "9223372036854775807", "0"] {
            extreme.payload = #"{"code":800,"message":"m","timestamp":\#(timestamp)}"#
            #expect(try reason(extreme, maxAge: 10, now: signedAt) == .stale, "\(timestamp)")
            #expect(try reason(extreme, maxAge: 10, now: .nan) == .stale, "\(timestamp)")
            #expect(try reason(extreme, maxAge: .infinity, now: signedAt) == nil, "\(timestamp)")
        }
    }

    @Test func everyReasonIsClassified() {
        let signatureProblems: Set<UntrustedReason> = [
            .envelopeNotJSON, .envelopeMissingFields, .unknownKey, .unsigned,
            .signatureNotBase64, .signatureWrongLength, .badSignature,
        ]
        for reason in UntrustedReason.allCases {
            #expect(reason.isSignatureProblem == signatureProblems.contains(reason), "\(reason)")
        }
    }

    @Test func manyThreadsVerifyAtOnce() throws {
        let good = try EnvelopeBuilder().bytes()
        var forgedBuilder = EnvelopeBuilder()
        forgedBuilder.signer = TestKeys.other2048
        let forged = try forgedBuilder.bytes()
        var mismatchBuilder = EnvelopeBuilder()
        mismatchBuilder.response = #"{"code":801,"message":"License key assigned","timestamp":1708999933}"#
        let mismatched = try mismatchBuilder.bytes()
        let verifier = self.verifier
        let wrong = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 16) { thread in
            for index in 0..<150 {
                let expected: UntrustedReason?
                let verdict: ReplyVerdict
                switch (thread + index) % 3 {
                case 0:
                    expected = nil
                    verdict = verifier.verify(good)
                case 1:
                    expected = .badSignature
                    verdict = verifier.verify(forged)
                default:
                    expected = .payloadMismatch
                    verdict = verifier.verify(mismatched)
                }
                let got: UntrustedReason?
                switch verdict {
                case .trusted: got = nil
                case .untrusted(let reason, _): got = reason
                }
                if got != expected { wrong.withLock { $0 += 1 } }
            }
        }
        #expect(wrong.withLock { $0 } == 0)
    }

    @Test func randomAndMutatedEnvelopesNeverCrashOrForge() throws {
        var random = SeededGenerator(state: 0x5EED_0001)
        let original = try EnvelopeBuilder().bytes()
        let originalPayload = SignedPayload(
            code: 800, message: "License key assigned", timestamp: 1_708_999_933, keyName: "global",
            signingKey: globalKey)
        let alphabet = Array(#"{}[]":,\/0123456789.eE+-tfnulrsa=ABCXYZ u"#.utf8)
        for round in 0..<20000 {
            var bytes = original
            let mutations = Int.random(in: 1...4, using: &random)
            for _ in 0..<mutations where !bytes.isEmpty {
                let at = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<6, using: &random) {
                case 0: bytes[at] ^= UInt8(1 << Int.random(in: 0..<8, using: &random))
                case 1: bytes[at] = UInt8.random(in: 0...255, using: &random)
                case 2: bytes.remove(at: at)
                case 3: bytes.insert(alphabet.randomElement(using: &random)!, at: at)
                case 4: bytes = Array(bytes[..<at])
                default:
                    let end = min(bytes.count, at + Int.random(in: 1...40, using: &random))
                    bytes.insert(contentsOf: bytes[at..<end], at: Int.random(in: 0...bytes.count, using: &random))
                }
            }
            if round % 10 == 0 {
                bytes = (0..<Int.random(in: 0...300, using: &random)).map { _ in alphabet.randomElement(using: &random)!
                }
            }
            if case .trusted(let payload) = verifier.verify(bytes) {
                // Whitespace-level mutations may keep a reply valid; none may change what it says.
                #expect(payload == originalPayload, "round \(round): \(String(decoding: bytes, as: UTF8.self))")
            }
        }
        // Validly signed but mutated payloads exercise the payload reader: the signature
        // holds, so only payload reasons may come back, and "trusted" only for the same value.
        let originalResponse = EnvelopeBuilder().payload
        for round in 0..<600 {
            var payload = Array(originalResponse.utf8)
            for _ in 0..<Int.random(in: 1...3, using: &random) where !payload.isEmpty {
                let at = Int.random(in: 0..<payload.count, using: &random)
                switch Int.random(in: 0..<4, using: &random) {
                case 0: payload[at] = alphabet.randomElement(using: &random)!
                case 1: payload.remove(at: at)
                case 2: payload.insert(alphabet.randomElement(using: &random)!, at: at)
                default: payload[at] = UInt8.random(in: 0...255, using: &random)
                }
            }
            var builder = EnvelopeBuilder()
            builder.response = originalResponse
            builder.responseBase64 = Data(payload).base64EncodedString()
            switch verifier.verify(try builder.bytes()) {
            case .trusted(let got):
                #expect(got == originalPayload, "round \(round): \(String(decoding: payload, as: UTF8.self))")
            case .untrusted(let reason, _):
                #expect(
                    !reason.isSignatureProblem,
                    "round \(round): \(reason) for \(String(decoding: payload, as: UTF8.self))")
            }
        }
        // Deep nesting and huge numbers must be refused, not recursed into or trapped on.
        #expect(reason(Array(String(repeating: "[", count: 100_000).utf8)) == .envelopeNotJSON)
        var deep = EnvelopeBuilder()
        deep.response = String(repeating: #"{"a":"#, count: 40) + "1" + String(repeating: "}", count: 40)
        #expect(try reason(deep) == .envelopeNotJSON)
        var huge = EnvelopeBuilder()
        huge.payload = #"{"code":800,"message":"m","timestamp":1\#(String(repeating: "9", count: 400))}"#
        #expect(try reason(huge) == .payloadMissingFields)
        #expect(try reason(huge, maxAge: 10) == .payloadMissingFields)
    }
}
