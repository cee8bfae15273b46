// libFuzzer harness for the listing path: ListingVerifier (the one core, EnvelopeVerifier, with
// ListingParser) against ReplyVerifier (the same core, with the reply's payload) on the same
// bytes, over the real demo key, seeded with real signed replies. Built by scripts/fuzz like the
// others (@testable: internal API is reachable).
//
// The properties, each a promise of docs/signatures.md ("the listing is verified exactly as a
// reply"): the two verifiers give the same reason wherever the envelope or its signature is
// what fails; a listing trusted is a reply trusted, with the same code and timestamp; the
// reader's two ways through an object (objectMembers, skipValue) accept the same texts;
// JSONEquality is reflexive and symmetric on any two texts the reader accepts; and a payload
// ListingParser reads is an object whose code, message and timestamp SignedFields reads the
// same. A broken property aborts with a message.
//
// Reproduce one input: SWIFT_BACKTRACE=enable=no .build-fuzz/listing CRASH-FILE

@testable import KeyAssign

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

private let ring = demoKeyRing

private let replies = ReplyVerifier(keyRing: ring)
private let listings = ListingVerifier(keyRing: ring)

/// Reasons decided before the payload is read: both verifiers take the same steps there.
private let envelopeReasons: Set<UntrustedReason> = [
    .envelopeNotJSON, .envelopeMissingFields, .unknownKey, .unsigned,
    .signatureNotBase64, .signatureWrongLength, .badSignature,
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzListingVerifier(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = UnsafeBufferPointer(start: data, count: data == nil ? 0 : size)
    let bytes = Array(input)

    let reply = replies.verify(input, maxAge: nil, now: 0)
    let listing = listings.verify(OwnedBytes(copying: bytes), maxAge: nil, now: 0)
    switch (reply, listing) {
    case (.untrusted(let a, _), .untrusted(let b, _)) where envelopeReasons.contains(a) || envelopeReasons.contains(b):
        if a != b { fail("reply verifier says \(a.rawValue), listing verifier says \(b.rawValue)") }
    case (.trusted(let payload), .trusted(let verified)):
        if payload.code != verified.code || payload.timestamp != verified.timestamp {
            fail(
                "both trusted, but reply \(payload.code)@\(payload.timestamp), listing \(verified.code)@\(verified.timestamp)"
            )
        }
    case (.untrusted(let a, _), .trusted):
        fail("the listing verifier trusted what the reply verifier refused (\(a.rawValue))")
    case (.trusted, .untrusted(let b, _)) where envelopeReasons.contains(b):
        fail("the reply verifier trusted what the listing verifier refused (\(b.rawValue))")
    default:
        break
    }

    // The reader's two ways through an object accept the same texts (duplicate names are found
    // by MemberNames in one, by a Set of decoded names in the other).
    var skipping = JSONScanner(input)
    let skipped: Bool
    do throws(JSONParseError) {
        try skipping.skipValue()
        try skipping.expectEnd()
        skipped = true
    } catch {
        skipped = false
    }
    var members = JSONScanner(input)
    if members.peek() == UInt8(ascii: "{") {
        let listed: Bool
        do throws(JSONParseError) {
            _ = try members.objectMembers()
            try members.expectEnd()
            listed = true
        } catch {
            listed = false
        }
        if listed != skipped {
            fail("objectMembers \(listed ? "accepts" : "refuses"), skipValue \(skipped ? "accepts" : "refuses")")
        }
    }

    // JSONEquality on two texts the reader accepts: the input split at its first '|'.
    if let bar = input.firstIndex(of: UInt8(ascii: "|")) {
        let a = UnsafeBufferPointer(rebasing: input[..<bar])
        let b = UnsafeBufferPointer(rebasing: input[(bar + 1)...])
        func accepted(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
            var scanner = JSONScanner(text)
            do throws(JSONParseError) {
                try scanner.skipValue()
                try scanner.expectEnd()
                return true
            } catch {
                return false
            }
        }
        if accepted(a) && accepted(b) {
            if !JSONEquality.equal(a, a) { fail("JSONEquality: a text differs from itself") }
            if JSONEquality.equal(a, b) != JSONEquality.equal(b, a) { fail("JSONEquality is not symmetric") }
        }
    }

    // A payload the listing parser reads is an object SignedFields reads the same.
    if case .success(let index) = ListingParser.parse(OwnedBytes(copying: bytes)) {
        var scanner = JSONScanner(input)
        guard let members = try? scanner.objectMembers(), let fields = try? SignedFields(members: members, in: input)
        else {
            fail("ListingParser read a payload that is not an object of members")
        }
        if fields.code != index.code { fail("the code differs") }
        if fields.message != index.message { fail("the message differs") }
        if fields.timestamp != index.timestamp { fail("the timestamp differs") }
    }
    return 0
}
