import COpenSSL

/// The one signature path, for replies and listings alike: RSASSA-PKCS1-v1_5 with SHA-256,
/// through OpenSSL's EVP API, over the keys `KeyRing.candidates` chose; a refusal is a
/// `KeyRing.Refusal` with the `UntrustedReason` and words both verifiers report.
///
/// The signed text is fed to the digest in runs, straight from the envelope, and decoded from
/// base64 in the same pass: a listing's `response_base64` is ~70 MB, and a reply's is read the
/// same way so that both are the same code.
struct SignatureCheck {
    let keyRing: KeyRing

    /// Checks the signature over the `response_base64` string as received (`raw`: its JSON
    /// text between the quotes, as `JSONScanner` scanned it; its escapes are undone, since the
    /// server signs `/` and writes `\/`), under the keys of `keyName` (only `onlyName`, when
    /// given). Returns the key that verified it and the decoded payload: nil when the signed
    /// text is not canonical standard base64.
    func verify(
        signedText raw: UnsafeBufferPointer<UInt8>, keyName: String, signatureText: String, onlyName: String? = nil
    ) -> Result<(signer: KeyRing.Key, payload: OwnedBytes?), KeyRing.Refusal> {
        let signing: (keys: [KeyRing.Key], signature: [UInt8])
        switch keyRing.candidates(keyName: keyName, signatureText: signatureText, onlyName: onlyName) {
        case .failure(let refusal): return .failure(refusal)
        case .success(let found): signing = found
        }
        for key in signing.keys {
            var payload: OwnedBytes?
            let holds = check(signing.signature, key: key) { update in payload = Self.unescapeAndDecode(raw, update) }
            if holds { return .success((key, payload)) }
        }
        return .failure(badSignature(keyName))
    }

    /// Checks the signature over base64(`payload`), for a listing kept as its signed payload:
    /// only canonical base64 was accepted when it was fetched, so encoding the payload again
    /// gives back the signed text. Encoded in chunks (EVP_EncodeBlock: standard alphabet,
    /// padded, no line breaks), so that no encoded copy of the whole payload is made.
    func verifyEncoded(payload: UnsafeBufferPointer<UInt8>, keyName: String, signatureText: String) -> Result<
        KeyRing.Key, KeyRing.Refusal
    > {
        let signing: (keys: [KeyRing.Key], signature: [UInt8])
        switch keyRing.candidates(keyName: keyName, signatureText: signatureText) {
        case .failure(let refusal): return .failure(refusal)
        case .success(let found): signing = found
        }
        let chunk = 3 << 14
        var encoded = [UInt8](repeating: 0, count: chunk / 3 * 4 + 1)
        for key in signing.keys {
            let holds = check(signing.signature, key: key) { update in
                encoded.withUnsafeMutableBufferPointer { out in
                    var offset = 0
                    while offset < payload.count, let base = payload.baseAddress, let to = out.baseAddress {
                        let count = min(chunk, payload.count - offset)
                        let length = EVP_EncodeBlock(to, base + offset, Int32(count))
                        update(UnsafeBufferPointer(start: to, count: Int(length)))
                        offset += count
                    }
                }
            }
            if holds { return .success(key) }
        }
        return .failure(badSignature(keyName))
    }

    private func badSignature(_ keyName: String) -> KeyRing.Refusal {
        KeyRing.Refusal(reason: .badSignature, detail: keyRing.badSignatureDetail(keyName: keyName))
    }

    /// The one call into OpenSSL's verification: `feed` hands the signed bytes to its `update`
    /// in runs. A failed check leaves entries on this thread's error queue; they are cleared so
    /// that they are not blamed on a later, unrelated call.
    private func check(
        _ signature: [UInt8], key: KeyRing.Key,
        feed: ((UnsafeBufferPointer<UInt8>) -> Void) -> Void
    ) -> Bool {
        guard let ctx = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestVerifyInit(ctx, nil, keyRing.sha256, nil, key.pkey) == 1 else {
            ERR_clear_error()
            return false
        }
        var updated = true
        feed { run in
            if run.count > 0, EVP_DigestVerifyUpdate(ctx, run.baseAddress, run.count) != 1 { updated = false }
        }
        let result = signature.withUnsafeBufferPointer { EVP_DigestVerifyFinal(ctx, $0.baseAddress, $0.count) }
        if result != 1 || !updated { ERR_clear_error() }
        return result == 1 && updated
    }

    /// Hands the value of the JSON string text `raw` (already checked by `JSONScanner`) to
    /// `update`, as UTF-8, and decodes it from base64 in the same pass. Runs without a
    /// backslash (all of it, unless the server escaped `/` as `\/`) go straight from the
    /// envelope; only escapes are rewritten. Nil when the value is not canonical base64.
    private static func unescapeAndDecode(
        _ raw: UnsafeBufferPointer<UInt8>,
        _ update: (UnsafeBufferPointer<UInt8>) -> Void
    ) -> OwnedBytes? {
        var decoder = Base64Strict(capacity: raw.count / 4 * 3 + 3)
        func feed(_ run: UnsafeBufferPointer<UInt8>) {
            guard run.count > 0 else { return }
            update(run)
            decoder.feed(run)
        }
        func hex4(_ at: Int) -> UInt32 {
            var value: UInt32 = 0
            for offset in at..<min(at + 4, raw.count) {
                let digit = raw[offset]
                value = value << 4 | UInt32(digit <= 0x39 ? digit &- 0x30 : (digit | 0x20) &- 0x57)
            }
            return value
        }
        var position = 0
        while position < raw.count {
            let rest = UnsafeBufferPointer(rebasing: raw[position...])
            guard let base = rest.baseAddress, let found = memchr(base, Int32(UInt8(ascii: "\\")), rest.count) else {
                feed(rest)
                break
            }
            let offset = UnsafeRawPointer(found) - UnsafeRawPointer(base)
            feed(UnsafeBufferPointer(rebasing: rest[0..<offset]))
            position += offset + 1
            guard position < raw.count else { return nil }
            let escape = raw[position]
            position += 1
            var value: UInt32
            switch escape {
            case UInt8(ascii: "b"): value = 0x08
            case UInt8(ascii: "f"): value = 0x0C
            case UInt8(ascii: "n"): value = 0x0A
            case UInt8(ascii: "r"): value = 0x0D
            case UInt8(ascii: "t"): value = 0x09
            case UInt8(ascii: "u"):
                value = hex4(position)
                position += 4
                if (0xD800...0xDBFF).contains(value) {
                    // JSONScanner saw the low half follow: \uDC00 to \uDFFF.
                    value = 0x10000 + ((value - 0xD800) << 10) + (hex4(position + 2) & 0x3FF)
                    position += 6
                }
            default: value = UInt32(escape)  // " \\ /
            }
            // The value's UTF-8, as the signer saw the string; anything but ASCII then fails
            // the base64 decoding. `\/` is one in every ~64 bytes of a listing's text: ASCII
            // goes straight through.
            if value < 0x80 {
                var byte = UInt8(value)
                withUnsafePointer(to: &byte) { feed(UnsafeBufferPointer(start: $0, count: 1)) }
                continue
            }
            let scalar = Unicode.Scalar(value) ?? "\u{FFFD}"
            for var byte in String(Character(scalar)).utf8 {
                withUnsafePointer(to: &byte) { feed(UnsafeBufferPointer(start: $0, count: 1)) }
            }
        }
        return decoder.finish()
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
