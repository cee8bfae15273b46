import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// `ListingVerifier` promises to verify a listing "exactly as" `ReplyVerifier` verifies a
/// reply (docs/signatures.md). Both are given the same envelopes, whose payloads both accept
/// (a listing has a code, a message and a timestamp too), genuine and mutated in the ways a
/// proxy, a PHP server or an attacker would, and must give the same verdict and reason.
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
        return [
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
        ]
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
}
