// libFuzzer harness for reply verification: ReplyVerifier over the one verification core
// (EnvelopeVerifier: JSONScanner, Base64Strict, SignatureCheck, JSONEquality) and the real key,
// seeded with real signed replies. Built by scripts/fuzz against the KeyAssign
// target, itself built under the sanitizers with testing enabled, so internal API is
// reachable through @testable.
//
// A mutant that still verifies is fine (whitespace, key order, escapes); one that verifies
// and says something else, or a verdict that disagrees with OpenSSL about whether the
// signature holds, is the bug this looks for. A broken property aborts with a message, which
// libFuzzer records as a crash with its input.
//
// Reproduce one input: SWIFT_BACKTRACE=enable=no .build-fuzz/reply CRASH-FILE (the fixtures
// are found from where this file was when it was built, or KEYASSIGN_FUZZ_FIXTURES).

import COpenSSL

@testable import KeyAssign

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

private let verifier = ReplyVerifier(keyRing: demoKeyRing)

/// The same key loaded a second way, for the cross-check that does not go through KeyRing.
nonisolated(unsafe) private let referenceKey: OpaquePointer = {
    let key = publicKeyPEM.withUnsafeBytes { raw -> OpaquePointer? in
        guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
        defer { BIO_free(bio) }
        return PEM_read_bio_PUBKEY(bio, nil, nil, nil)
    }
    guard let key else { fail("OpenSSL cannot read the public key") }
    return key
}()

private struct Envelope {
    /// The unsigned `response` object's text.
    var response: [UInt8]
    var signedText: String
    var keyName: String
    var signatureText: String
}

/// The fields the signature check depends on, when the envelope has them all.
private func envelopeFields(_ input: UnsafeBufferPointer<UInt8>) -> Envelope? {
    guard case .success(let fields) = SignedEnvelope.read(input, subject: "the reply") else { return nil }
    var reader = JSONScanner(input, position: fields.signedText.lowerBound - 1)
    guard let signedText = try? reader.decodeString(try reader.scanString()) else {
        fail("SignedEnvelope read a response_base64 string JSONScanner cannot read again")
    }
    return Envelope(
        response: Array(input[fields.response]), signedText: signedText, keyName: fields.keyName,
        signatureText: fields.signatureText)
}

/// Whether two unsigned copies say the same, by the core's own comparison.
private func sameResponse(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in JSONEquality.equal(x, y) } }
}

private func encodeBase64(_ bytes: [UInt8]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: (bytes.count + 2) / 3 * 4 + 1)
    let n = EVP_EncodeBlock(&out, bytes, Int32(bytes.count))
    return Array(out.prefix(Int(n)))
}

/// OpenSSL's decoding, padding removed; nil where OpenSSL refuses the text.
private func decodeBase64(_ text: [UInt8]) -> [UInt8]? {
    guard !text.isEmpty else { return [] }
    var out = [UInt8](repeating: 0, count: text.count / 4 * 3 + 3)
    let n = EVP_DecodeBlock(&out, text, Int32(text.count))
    guard n >= 0 else { return nil }
    let padding = text.reversed().prefix(2).prefix { $0 == UInt8(ascii: "=") }.count
    guard Int(n) >= padding else { return nil }
    return Array(out.prefix(Int(n) - padding))
}

/// Base64Strict accepts exactly the canonical encodings: whatever it decodes re-encodes to
/// the same text, and every text that is the canonical encoding of some bytes decodes to
/// those bytes.
private func checkBase64(_ text: [UInt8]) {
    let strict = Base64Strict.decode(text)
    if let strict, encodeBase64(strict) != text {
        fail("Base64Strict accepts the non-canonical \(String(decoding: text, as: UTF8.self).debugDescription)")
    }
    if let reference = decodeBase64(text), encodeBase64(reference) == text, strict != reference {
        fail("Base64Strict refuses or misreads the canonical \(String(decoding: text, as: UTF8.self).debugDescription)")
    }
}

/// Whether the signature holds, asked of OpenSSL directly: no KeyRing, no Base64Strict.
private func referenceSignatureHolds(_ envelope: Envelope) -> Bool {
    guard envelope.keyName == "global", let signature = decodeBase64(Array(envelope.signatureText.utf8)),
        let ctx = EVP_MD_CTX_new()
    else { return false }
    defer { EVP_MD_CTX_free(ctx) }
    let message = Array(envelope.signedText.utf8)
    let holds =
        EVP_DigestVerifyInit(ctx, nil, EVP_sha256(), nil, referenceKey) == 1
        && EVP_DigestVerify(ctx, signature, signature.count, message, message.count) == 1
    ERR_clear_error()
    return holds
}

/// What the genuine replies say, by their signed text, with their unsigned `response` copy.
/// RSA signatures cannot be forged by mutation, so any reply the verifier trusts must carry
/// one of these signed texts, and must then say exactly what the genuine reply says.
private let genuineStatements: [String: (payload: SignedPayload, response: [UInt8])] = {
    var statements: [String: (payload: SignedPayload, response: [UInt8])] = [:]
    for name in ["reply-800.json", "reply-801.json"] {
        let bytes = readFixture(name)
        guard case .trusted(let payload) = verifier.verify(bytes, maxAge: nil, now: 0),
            let envelope = bytes.withUnsafeBufferPointer(envelopeFields),
            referenceSignatureHolds(envelope)
        else {
            fail("the genuine \(name) does not verify")
        }
        statements[envelope.signedText] = (payload, envelope.response)
    }
    return statements
}()

@_cdecl("LLVMFuzzerInitialize")
public func fuzzReplyVerifierInitialize(
    _ argc: UnsafeMutablePointer<Int32>?,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> Int32 {
    // Load everything before the first input, so set-up allocations are not taken for leaks.
    _ = genuineStatements
    _ = referenceKey
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReplyVerifier(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = UnsafeBufferPointer(start: data, count: data == nil ? 0 : size)
    let verdict = verifier.verify(input, maxAge: nil, now: 0)
    let envelope = envelopeFields(input)

    // Past the signature check (trusted, or a payload problem), OpenSSL must agree the
    // signature holds; a bad signature, OpenSSL must agree it does not.
    switch verdict {
    case .trusted(let payload):
        guard let envelope, referenceSignatureHolds(envelope) else {
            fail("trusted, but the signature does not hold: \(payload)")
        }
        guard let genuine = genuineStatements[envelope.signedText] else {
            fail("trusted a signed text no genuine reply has: \(envelope.signedText.debugDescription)")
        }
        if payload != genuine.payload { fail("trusted \(payload), but the signed text says \(genuine.payload)") }
        if !sameResponse(envelope.response, genuine.response) {
            fail(
                "trusted with an unsigned response that differs from the genuine one: \(String(decoding: envelope.response, as: UTF8.self).debugDescription)"
            )
        }
        // The age check: within the window is trusted, one second past it is stale.
        let at = Double(payload.timestamp)
        guard case .trusted = verifier.verify(input, maxAge: 0, now: at) else {
            fail("trusted reply refused at its own timestamp")
        }
        guard case .untrusted(.stale, _) = verifier.verify(input, maxAge: 10, now: at + 11) else {
            fail("trusted reply not stale 11 s later with maxAge 10")
        }
    case .untrusted(let reason, let detail):
        if reason.isSignatureProblem {
            if reason == .badSignature, let envelope, referenceSignatureHolds(envelope) {
                fail("bad_signature, but OpenSSL says it holds: \(detail)")
            }
        } else {
            guard let envelope, referenceSignatureHolds(envelope) else {
                fail("\(reason.rawValue) (a payload problem), but the signature does not hold: \(detail)")
            }
            // A genuine signed text is a usable payload; only the unsigned copy beside it can
            // be wrong (payload_mismatch), or its age (stale, not asked for here).
            if reason != .payloadMismatch, genuineStatements[envelope.signedText] != nil {
                fail("\(reason.rawValue) for a genuine signed text: \(detail)")
            }
        }
    }

    if let envelope {
        checkBase64(Array(envelope.signedText.utf8))
        checkBase64(Array(envelope.signatureText.utf8))
    }
    if size <= 4096 { checkBase64(Array(input)) }
    return 0
}
