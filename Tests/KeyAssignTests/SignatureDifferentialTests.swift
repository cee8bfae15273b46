import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// `ListingVerifier` promises to verify a listing "exactly as" `ReplyVerifier` verifies a
/// reply (docs/signatures.md): both are the one core, `EnvelopeVerifier`. Both are given the
/// same envelopes, whose payloads both accept (a listing has a code, a message and a timestamp
/// too), genuine and mutated in the ways a proxy, a PHP server or an attacker would, and must
/// give the same verdict and reason; and the real signed replies of the API's fixtures, where
/// both must agree up to the payload (a reply's payload has no `license_keys`).
@Suite struct SignatureDifferentialTests {
    private static let payload =
        #"{"code":730,"message":"License keys","license_keys":[{"id":1,"product_id":1,"license_key":"K-1","owner_name":"Ada","owner_email":"ada@example.com","activation_limit":1,"validity":365,"assigned_at":"2026-12-01 10:00:00","status":"assigned","created_at":null,"updated_at":null}],"timestamp":1790000000}"#

    private struct Case {
        var name: String
        var envelope: String
    }

    private func cases() throws -> [Case] {
        let base64 = Data(Self.payload.utf8).base64EncodedString()
        let signature = try TestKeys.global.signBase64(base64)
        let otherSignature = try TestKeys.other2048.signBase64(base64)
        func envelope(
            response: String = Self.payload, responseBase64: String = base64, key: String = "\"global\"",
            signature sig: String = signature, extra: String = ""
        ) -> String {
            #"{"response":\#(response),"response_base64":"\#(responseBase64)","private_key_used":\#(key),"signature":"\#(sig)"\#(extra)}"#
        }
        let escapedBase64 = base64.replacingOccurrences(of: "/", with: "\\/")
        let escapedSignature = signature.replacingOccurrences(of: "/", with: "\\/")
        var flipped = Array(Data(base64Encoded: signature) ?? Data())
        flipped[flipped.count / 2] ^= 1
        let reordered =
            #"{"timestamp":1790000000,"license_keys":[{"id":1,"product_id":1,"license_key":"K-1","owner_name":"Ada","owner_email":"ada@example.com","activation_limit":1,"validity":365,"assigned_at":"2026-12-01 10:00:00","status":"assigned","created_at":null,"updated_at":null}],"message":"License keys","code":730}"#
        // Non-canonical spellings of the signed text (each then signed as sent, so only the
        // base64 rule can refuse it) and of the signature.
        // "Ada>>>?" makes the encoding end in "==" and hold both "+" and "/".
        let padded = Data(Self.payload.replacingOccurrences(of: "\"Ada\"", with: "\"Ada>>>?\"").utf8)
            .base64EncodedString()
        let strayBits = Self.strayBits(padded)
        let unpadded = String(padded.prefix { $0 != "=" })
        let broken = (
            text: String(padded.prefix(76)) + "\n" + String(padded.dropFirst(76)),
            escaped: String(padded.prefix(76)) + "\\n" + String(padded.dropFirst(76))
        )
        let urlSafe = padded.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        let strayBitsSignature = Self.strayBits(signature)
        let cases = [
            Case(name: "genuine", envelope: envelope()),
            Case(
                name: "slashes escaped as PHP writes them",
                envelope: envelope(responseBase64: escapedBase64, signature: escapedSignature)),
            Case(
                name: "whitespace around everything",
                envelope: " \n" + envelope().replacingOccurrences(of: "\":", with: "\" : ") + " \t"),
            Case(name: "response members reordered", envelope: envelope(response: reordered)),
            Case(
                name: "response with a unicode escape",
                envelope: envelope(response: Self.payload.replacingOccurrences(of: "Ada", with: "\\u0041da"))),
            Case(
                name: "response changed",
                envelope: envelope(response: Self.payload.replacingOccurrences(of: "ada@", with: "eve@"))),
            Case(
                name: "response code as a string",
                envelope: envelope(response: Self.payload.replacingOccurrences(of: "730", with: "\"730\""))),
            Case(
                name: "response number written 730.0",
                envelope: envelope(response: Self.payload.replacingOccurrences(of: ":730", with: ":730.0"))),
            Case(name: "extra member in the envelope", envelope: envelope(extra: #","note":"x""#)),
            Case(name: "signature flipped", envelope: envelope(signature: Data(flipped).base64EncodedString())),
            Case(name: "signed by another key", envelope: envelope(signature: otherSignature)),
            Case(name: "unknown key name", envelope: envelope(key: "\"product\"")),
            Case(name: "key name not a string", envelope: envelope(key: "7")),
            Case(name: "unsigned marker", envelope: envelope(signature: ReplyVerifier.unsignedMarker)),
            Case(name: "signature not base64", envelope: envelope(signature: "%%%%")),
            Case(name: "signature too short", envelope: envelope(signature: "AAAA")),
            Case(name: "response_base64 padded wrongly", envelope: envelope(responseBase64: base64 + "=")),
            Case(name: "not JSON", envelope: "{\"response\":"),
            Case(name: "an array", envelope: "[1,2]"),
            Case(
                name: "missing signature",
                envelope: #"{"response":\#(Self.payload),"response_base64":"\#(base64)","private_key_used":"global"}"#),
            Case(name: "response not an object", envelope: envelope(response: "\"x\"")),
            Case(name: "trailing garbage", envelope: envelope() + "x"),
            Case(name: "duplicate member", envelope: envelope(extra: #","signature":"\#(signature)""#)),
            Case(
                name: "duplicate member inside the response",
                envelope: envelope(
                    response: Self.payload.replacingOccurrences(of: "\"code\":730,", with: "\"code\":730,\"code\":730,")
                )),
            Case(
                name: "duplicate member inside a listing entry",
                envelope: envelope(
                    response: Self.payload.replacingOccurrences(of: "\"id\":1,", with: "\"id\":1,\"id\":1,"))),
            Case(
                name: "duplicate member spelled with an escape",
                envelope: envelope(
                    response: Self.payload.replacingOccurrences(of: "\"id\":1,", with: "\"id\":1,\"\\u0069d\":1,"))),
            Case(name: "a lone surrogate escape in a string", envelope: envelope(extra: #","note":"\ud800""#)),
            Case(name: "response swapped for another signed payload", envelope: envelope(response: Self.later)),
            Case(
                name: "the signed text's first letter as a \\u escape",
                envelope: envelope(
                    responseBase64: "\\u00" + String(format: "%02x", base64.utf8.first ?? 0) + base64.dropFirst())),
            Case(
                name: "the signed text's first letter as a non-ASCII \\u escape",
                envelope: envelope(
                    responseBase64: "\\u00e9" + base64.dropFirst())),
            Case(
                name: "signed text with stray bits before its padding (non-canonical), signed as sent",
                envelope: envelope(responseBase64: strayBits, signature: try TestKeys.global.signBase64(strayBits))),
            Case(
                name: "signed text without its padding, signed as sent",
                envelope: envelope(responseBase64: unpadded, signature: try TestKeys.global.signBase64(unpadded))),
            Case(
                name: "signed text with a MIME line break, signed as sent",
                envelope: envelope(
                    responseBase64: broken.escaped, signature: try TestKeys.global.signBase64(broken.text))),
            Case(
                name: "signed text in the URL-safe alphabet, signed as sent",
                envelope: envelope(responseBase64: urlSafe, signature: try TestKeys.global.signBase64(urlSafe))),
            Case(
                name: "signature with stray bits before its padding", envelope: envelope(signature: strayBitsSignature)),
            Case(
                name: "signature without its padding",
                envelope: envelope(signature: String(signature.prefix { $0 != "=" }))),
            Case(
                name: "signature with a line break",
                envelope: envelope(signature: String(signature.prefix(76)) + "\\n" + String(signature.dropFirst(76)))),
            Case(name: "trailing NUL", envelope: envelope() + "\u{0}"),
            Case(name: "a second object after the envelope", envelope: envelope() + "{}"),
            Case(name: "truncated", envelope: String(envelope().dropLast())),
            Case(name: "envelope nested in an array", envelope: "[" + envelope() + "]"),
            Case(
                name: "response nested one level deeper", envelope: envelope(response: "{\"x\":" + Self.payload + "}")),
            Case(
                name: "response code written 7.3e2",
                envelope: envelope(
                    response: Self.payload.replacingOccurrences(of: ":730", with: ":7.3e2"))),
        ]
        // Deep nesting in a member neither verifier reads, on both sides of the limit, and in
        // the response copy and the signed payload themselves.
        var nested: [Case] = []
        for depth in [29, 30, 31, 32, 33] {
            let deep = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            nested.append(
                Case(name: "an extra member nested \(depth) deep", envelope: envelope(extra: #","note":\#(deep)"#)))
            let deepPayload = Self.payload.replacingOccurrences(
                of: "\"code\":730,", with: "\"code\":730,\"deep\":\(deep),")
            let deepBase64 = Data(deepPayload.utf8).base64EncodedString()
            nested.append(
                Case(
                    name: "a signed payload and its copy with a member nested \(depth) deep",
                    envelope: envelope(
                        response: deepPayload, responseBase64: deepBase64,
                        signature: try TestKeys.global.signBase64(deepBase64))))
            nested.append(
                Case(
                    name: "a signed payload with a member nested \(depth) deep, beside a shallow copy",
                    envelope: envelope(
                        responseBase64: deepBase64, signature: try TestKeys.global.signBase64(deepBase64))))
        }
        return cases + nested
    }

    /// The same payload signed 60 s later: a genuine response, not the one signed here.
    private static let later = payload.replacingOccurrences(of: "1790000000", with: "1790000060")

    /// `text` (base64 ending in '=') with its last letter before the padding one step on in the
    /// alphabet: it decodes to the same bytes under a lax decoder, but is not what encoding
    /// them gives.
    private static func strayBits(_ text: String) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        var characters = Array(text)
        guard let last = characters.lastIndex(where: { $0 != "=" }), let at = alphabet.firstIndex(of: characters[last])
        else { return text }
        characters[last] = alphabet[(at + 1) % 64]
        return String(characters)
    }

    private func reasonOf(_ verdict: ReplyVerdict) -> String {
        switch verdict {
        case .trusted(let payload): "trusted \(payload.code) \(payload.timestamp)"
        case .untrusted(let reason, _): reason.rawValue
        }
    }

    private func reasonOf(_ verdict: ListingVerdict) -> String {
        switch verdict {
        case .trusted(let listing): "trusted \(listing.code) \(listing.timestamp)"
        case .untrusted(let reason, _): reason.rawValue
        }
    }

    @Test("the reply and listing verifiers agree on every envelope, verdict and reason")
    func agree() throws {
        let ring = try TestKeys.ring()
        let replies = ReplyVerifier(keyRing: ring)
        let listings = ListingVerifier(keyRing: ring)
        var disagreements: [String] = []
        for item in try cases() {
            let bytes = Array(item.envelope.utf8)
            for (maxAge, now) in [(nil, 0.0), (300.0, 1_790_000_100.0), (300.0, 1_790_001_000.0)] as [(Double?, Double)]
            {
                let reply = reasonOf(replies.verify(bytes, maxAge: maxAge, now: now))
                let listing = reasonOf(listings.verify(OwnedBytes(copying: bytes), maxAge: maxAge, now: now))
                if reply != listing {
                    disagreements.append(
                        "\(item.name) (maxAge \(maxAge.map { "\($0)" } ?? "none")): reply \(reply), listing \(listing)")
                }
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.joined(separator: "\n"))")
    }

    @Test("invalid UTF-8 or a lone surrogate in a member neither verifier reads is refused by both, as not JSON")
    func unreadMembers() throws {
        let ring = try TestKeys.ring()
        let genuine = Array(try cases()[0].envelope.utf8)
        for junk: [UInt8] in [
            [0xFF], [0xC0, 0xAF], [0xED, 0xA0, 0x80], Array(#"\udc00"#.utf8), Array(#"\ud800x"#.utf8),
        ] {
            var bytes = Array(genuine.dropLast())
            bytes += Array(#","note":""#.utf8) + junk + Array("\"}".utf8)
            #expect(reasonOf(ReplyVerifier(keyRing: ring).verify(bytes)) == "envelope_not_json")
            #expect(
                reasonOf(ListingVerifier(keyRing: ring).verify(OwnedBytes(copying: bytes), maxAge: nil))
                    == "envelope_not_json")
        }
    }

    @Test("the genuine envelope is trusted by both (the differential is not vacuous)")
    func genuine() throws {
        let ring = try TestKeys.ring()
        let bytes = Array(try cases()[0].envelope.utf8)
        #expect(reasonOf(ReplyVerifier(keyRing: ring).verify(bytes)) == "trusted 730 1790000000")
        #expect(
            reasonOf(ListingVerifier(keyRing: ring).verify(OwnedBytes(copying: bytes), maxAge: nil))
                == "trusted 730 1790000000")
    }

    @Test(
        "every one-byte deletion, and a few replacements at every byte, of the genuine envelope get one verdict from both"
    )
    func mutationSweep() throws {
        let ring = try TestKeys.ring()
        let replies = ReplyVerifier(keyRing: ring)
        let listings = ListingVerifier(keyRing: ring)
        let genuine = Array(try cases()[1].envelope.utf8)  // the one with \/ escapes
        var disagreements: [String] = []
        var reasons: Set<String> = []
        func compare(_ bytes: [UInt8], _ what: String) {
            let reply = reasonOf(replies.verify(bytes, maxAge: nil, now: 0))
            let listing = reasonOf(listings.verify(OwnedBytes(copying: bytes), maxAge: nil, now: 0))
            reasons.insert(reply)
            if reply != listing, disagreements.count < 20 {
                disagreements.append("\(what): reply \(reply), listing \(listing)")
            }
        }
        for at in genuine.indices {
            var deleted = genuine
            deleted.remove(at: at)
            compare(deleted, "byte \(at) deleted")
            for replacement: UInt8 in [
                UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "{"), 0xFF, 0x00, UInt8(ascii: "0"),
            ]
            where genuine[at] != replacement {
                var replaced = genuine
                replaced[at] = replacement
                compare(replaced, "byte \(at) replaced by 0x\(String(replacement, radix: 16))")
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.joined(separator: "\n"))")
        // Not vacuous: the mutants reach the envelope, the signature, the payload and the copy.
        for reason in ["envelope_not_json", "envelope_missing_fields", "bad_signature", "payload_mismatch"] {
            #expect(reasons.contains(reason), "no mutant was \(reason): \(reasons.sorted())")
        }
    }

    /// A verdict up to the payload: a reply's payload is not a listing's, so past the
    /// signature the two read different payloads; up to it they must agree exactly.
    private func signatureVerdict(_ reason: UntrustedReason?) -> String {
        guard let reason, reason.isSignatureProblem else { return "the signature holds" }
        return reason.rawValue
    }

    @Test("the API's real signed replies, and their mutants, get the same verdict from both up to the payload")
    func realReplies() throws {
        let pem = try String(contentsOfFile: CLI.fixture("docs-demo-global-public.pem"), encoding: .utf8)
        let ring = try KeyRing(pems: ["global": pem])
        let replies = ReplyVerifier(keyRing: ring)
        let listings = ListingVerifier(keyRing: ring)
        var checked = 0
        var disagreements: [String] = []
        var signatureHeld = 0
        for name in [
            "reply-800.json", "reply-801.json", "reply-800-response-swapped.json", "reply-800-signature-flipped.json",
        ] {
            let genuine = Array(try Data(contentsOf: URL(fileURLWithPath: CLI.fixture(name))))
            let text = String(decoding: genuine, as: UTF8.self)
            var variants: [(String, [UInt8])] = [
                ("as stored", genuine),
                ("slashes escaped", Array(text.replacingOccurrences(of: "/", with: "\\/").utf8)),
                ("whitespace removed", Array(text.filter { $0 != " " && $0 != "\n" }.utf8)),
                ("trailing byte", genuine + [UInt8(ascii: "x")]),
                (
                    "duplicate signature",
                    Array(
                        text.replacingOccurrences(of: "\"signature\"", with: "\"signature\": \"x\", \"signature\"").utf8
                    )
                ),
                ("key name product", Array(text.replacingOccurrences(of: "\"global\"", with: "\"product\"").utf8)),
            ]
            for at in stride(from: 0, to: genuine.count, by: 7) {
                var flipped = genuine
                flipped[at] ^= 0x01
                variants.append(("bit 0 of byte \(at) flipped", flipped))
                variants.append(("cut at byte \(at)", Array(genuine[..<at])))
            }
            for (what, bytes) in variants {
                let reply = replies.verify(bytes, maxAge: nil, now: 0)
                let listing = listings.verify(OwnedBytes(copying: bytes), maxAge: nil, now: 0)
                var replyReason: UntrustedReason?
                if case .untrusted(let reason, _) = reply { replyReason = reason }
                var listingReason: UntrustedReason?
                if case .untrusted(let reason, _) = listing { listingReason = reason }
                // A reply's payload lacks `license_keys`: the listing verifier must get that far
                // and refuse only that.
                if case .untrusted(.payloadMissingFields, let detail) = listing,
                    detail != "the signed payload lacks license_keys (array)"
                {
                    disagreements.append("\(name) \(what): listing \(detail)")
                }
                if case .trusted = listing { disagreements.append("\(name) \(what): a reply trusted as a listing") }
                if signatureVerdict(replyReason) != signatureVerdict(listingReason) {
                    disagreements.append(
                        "\(name) \(what): reply \(signatureVerdict(replyReason)), listing \(signatureVerdict(listingReason))"
                    )
                }
                if signatureVerdict(replyReason) == "the signature holds" { signatureHeld += 1 }
                checked += 1
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(20).joined(separator: "\n"))")
        #expect(checked > 300 && signatureHeld >= 9, "\(checked) envelopes, \(signatureHeld) with a holding signature")
    }
}
