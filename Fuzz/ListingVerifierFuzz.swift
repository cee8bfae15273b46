// libFuzzer harness for the listing path: ListingVerifier (JSONScanner, the streaming base64
// decoder, JSONEquality, ListingParser) against the reply path (StrictJSON, Base64Strict,
// ReplyVerifier) on the same bytes, over the real demo key, seeded with real signed replies.
// Built by scripts/fuzz like the others (@testable: internal API is reachable).
//
// The properties, each a promise of docs/signatures.md ("the listing is verified exactly as a
// reply"): the two verifiers give the same reason wherever the envelope or its signature is
// what fails; a listing trusted is a reply trusted, with the same code and timestamp; the two
// JSON readers accept the same texts; and a payload ListingParser reads is one StrictJSON
// reads, with the same code, message and timestamp. A broken property aborts with a message.
//
// Reproduce one input: SWIFT_BACKTRACE=enable=no .build-fuzz/listing CRASH-FILE

@testable import KeyAssign

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

private let fixtures: String = {
    if let dir = getenv("KEYASSIGN_FUZZ_FIXTURES") { return String(cString: dir) }
    let source = "\(#filePath)"
    let repo = source.split(separator: "/", omittingEmptySubsequences: false).dropLast(2).joined(separator: "/")
    return repo + "/Tests/KeyAssignTests/Fixtures"
}()

private let ring: KeyRing = {
    switch SmallFile.contents(of: fixtures + "/docs-demo-global-public.pem", limit: 1 << 20) {
    case .success(let pem):
        do { return try KeyRing(pems: ["global": String(decoding: pem, as: UTF8.self)]) } catch {
            fail("cannot load the public key: \(error)")
        }
    case .failure(let failure):
        fail("fixture: \(failure.description)")
    }
}()

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

    // The two JSON readers accept the same texts.
    let strict = (try? StrictJSONParser.parse(input)) != nil
    var scanner = JSONScanner(input)
    let scanned: Bool
    do throws(JSONParseError) {
        try scanner.skipValue()
        try scanner.expectEnd()
        scanned = true
    } catch {
        scanned = false
    }
    if strict != scanned {
        fail("StrictJSON \(strict ? "accepts" : "refuses"), JSONScanner \(scanned ? "accepts" : "refuses")")
    }

    // A payload the listing parser reads is one StrictJSON reads, saying the same.
    if case .success(let index) = ListingParser.parse(OwnedBytes(copying: bytes)) {
        guard case .object? = try? StrictJSONParser.parse(input) else {
            fail("ListingParser read a payload StrictJSON refuses")
        }
        if let value = try? StrictJSONParser.parse(input) {
            if value["message"]?.stringValue != index.message { fail("the message differs") }
            if value["timestamp"]?.integerValue != index.timestamp { fail("the timestamp differs") }
        }
    }
    return 0
}
