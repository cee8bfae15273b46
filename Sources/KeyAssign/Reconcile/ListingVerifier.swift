import COpenSSL

/// A key listing whose signature holds, whose payload matches its unsigned copy and parses.
public struct VerifiedListing: Sendable {
    public let index: ListingIndex
    /// The key that signed it (`private_key_used`).
    public let keyName: String
    /// The envelope's `signature`, as sent (base64): with the payload, what is kept as evidence.
    public let signature: String
    public var code: Int { index.code }
    public var timestamp: Int64 { index.timestamp }
}

public enum ListingVerdict: Sendable {
    case trusted(VerifiedListing)
    case untrusted(UntrustedReason, String)
}

/// Verifies a `get-license-keys` envelope exactly as `ReplyVerifier` verifies an assign reply
/// (the same steps, reasons and key ring; see docs/signatures.md), but in one pass over text
/// that may be hundreds of megabytes: the envelope is scanned, not parsed into values; the
/// signed `response_base64` text is fed to the digest and decoded in the same loop, its JSON
/// escapes undone on the fly; and the unsigned `response` is compared with the payload as text
/// (`JSONEquality`). Peak memory is the envelope plus the decoded payload.
public struct ListingVerifier: Sendable {
    public let keyRing: KeyRing
    /// The only key name a fetched listing may be signed with: the server signs its listing
    /// with the server-wide key, `global`. A product's key signs that product's replies, and
    /// trusting it for the whole inventory would let one product's key speak for all.
    public let listingKeyName: String

    public static let defaultListingKeyName = "global"

    public init(keyRing: KeyRing, listingKeyName: String = ListingVerifier.defaultListingKeyName) {
        self.keyRing = keyRing
        self.listingKeyName = listingKeyName
    }

    /// `maxAge` nil: no freshness check (`audit` of a stored listing).
    public func verify(_ envelope: OwnedBytes, maxAge: Double?, now: Double = Timestamps.now()) -> ListingVerdict {
        let bytes = envelope.buffer
        var scanner = JSONScanner(bytes)
        var members: [String: Range<Int>] = [:]
        do throws(JSONParseError) {
            guard scanner.peek() == UInt8(ascii: "{") else {
                return .untrusted(.envelopeNotJSON, "the listing is not a JSON object")
            }
            for member in try scanner.objectMembers() { members[member.name] = member.value }
            try scanner.expectEnd()
        } catch {
            return .untrusted(.envelopeNotJSON, "the listing is not JSON: \(error.description)")
        }
        func string(_ name: String) -> String? {
            guard let range = members[name], bytes[range.lowerBound] == UInt8(ascii: "\"") else { return nil }
            var reader = JSONScanner(bytes, position: range.lowerBound)
            return try? reader.decodeString(try reader.scanString())
        }
        var missing: [String] = []
        let response = members["response"]
        if response.map({ bytes[$0.lowerBound] != UInt8(ascii: "{") }) ?? true { missing.append("response (object)") }
        let signed = members["response_base64"].flatMap { range -> (range: Range<Int>, escaped: Bool)? in
            var reader = JSONScanner(bytes, position: range.lowerBound)
            return reader.peek() == UInt8(ascii: "\"") ? try? reader.scanString() : nil
        }
        if signed == nil { missing.append("response_base64 (string)") }
        let keyName = string("private_key_used")
        if keyName == nil { missing.append("private_key_used (string)") }
        let signatureText = string("signature")
        if signatureText == nil { missing.append("signature (string)") }
        guard missing.isEmpty, let response, let signed, let keyName, let signatureText else {
            return .untrusted(.envelopeMissingFields, "the listing lacks " + missing.joined(separator: ", "))
        }
        let signing: (keys: [KeyRing.Key], signature: [UInt8])
        switch keyRing.candidates(keyName: keyName, signatureText: signatureText, onlyName: listingKeyName) {
        case .failure(let refusal): return .untrusted(refusal.reason, refusal.detail)
        case .success(let found): signing = found
        }
        var verified: (holds: Bool, payload: OwnedBytes?)?
        for key in signing.keys {
            let digested = digestAndDecode(
                UnsafeBufferPointer(rebasing: bytes[signed.range]), signature: signing.signature, key: key)
            if digested.holds {
                verified = digested
                break
            }
        }
        guard let digested = verified else { return badSignature(keyName) }
        guard let payload = digested.payload else {
            return .untrusted(.payloadNotJSON, "response_base64 is signed but is not standard base64")
        }
        let index: ListingIndex
        switch ListingParser.parse(payload) {
        case .failure(let failure):
            return .untrusted(failure.missingFields ? .payloadMissingFields : .payloadNotJSON, failure.message)
        case .success(let parsed):
            index = parsed
        }
        guard JSONEquality.equal(UnsafeBufferPointer(rebasing: bytes[response]), payload.buffer) else {
            return .untrusted(
                .payloadMismatch, "the unsigned response differs from the signed payload; the listing was altered")
        }
        if let maxAge, !(abs(now - Double(index.timestamp)) <= maxAge) {
            let age = now - Double(index.timestamp)
            let shown = age.magnitude < 1e15 ? String(Int64(age.rounded())) : String(age)
            return .untrusted(
                .stale,
                "the listing was signed at \(index.timestamp), \(shown) s before now; more than the allowed \(maxAge) s either way"
            )
        }
        return .trusted(VerifiedListing(index: index, keyName: keyName, signature: signatureText))
    }

    /// Verifies a listing kept as its signed payload and signature (`listings.payload`, from
    /// migration 5 on): the signed text is the payload's base64, because only canonical
    /// base64 was accepted when it was fetched, so it is encoded again, in chunks, into the
    /// digest. No freshness check: this is `audit` of evidence kept.
    public func verifyStored(payload: OwnedBytes, signature signatureText: String, keyName: String) -> ListingVerdict {
        let signing: (keys: [KeyRing.Key], signature: [UInt8])
        switch keyRing.candidates(keyName: keyName, signatureText: signatureText) {
        case .failure(let refusal): return .untrusted(refusal.reason, refusal.detail)
        case .success(let found): signing = found
        }
        guard signing.keys.contains(where: { digestEncoded(payload.buffer, signature: signing.signature, key: $0) })
        else {
            return badSignature(keyName)
        }
        switch ListingParser.parse(payload) {
        case .failure(let failure):
            return .untrusted(failure.missingFields ? .payloadMissingFields : .payloadNotJSON, failure.message)
        case .success(let index):
            return .trusted(VerifiedListing(index: index, keyName: keyName, signature: signatureText))
        }
    }

    private func badSignature(_ keyName: String) -> ListingVerdict {
        .untrusted(.badSignature, keyRing.badSignatureDetail(keyName: keyName))
    }

    /// Feeds base64(payload) to the digest in chunks (EVP_EncodeBlock: standard alphabet,
    /// padded, no line breaks), so that no encoded copy of the whole payload is made.
    private func digestEncoded(_ payload: UnsafeBufferPointer<UInt8>, signature: [UInt8], key: KeyRing.Key) -> Bool {
        guard let ctx = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestVerifyInit(ctx, nil, keyRing.sha256, nil, key.pkey) == 1 else {
            ERR_clear_error()
            return false
        }
        let chunk = 3 << 14
        var encoded = [UInt8](repeating: 0, count: chunk / 3 * 4 + 1)
        var offset = 0
        encoded.withUnsafeMutableBufferPointer { out in
            while offset < payload.count, let base = payload.baseAddress {
                let count = min(chunk, payload.count - offset)
                let length = EVP_EncodeBlock(out.baseAddress, base + offset, Int32(count))
                _ = EVP_DigestVerifyUpdate(ctx, out.baseAddress, Int(length))
                offset += count
            }
        }
        let result = signature.withUnsafeBufferPointer { EVP_DigestVerifyFinal(ctx, $0.baseAddress, $0.count) }
        if result != 1 { ERR_clear_error() }
        return result == 1
    }

    /// Feeds the signed text (the string's value: `\/` and other escapes undone) to the
    /// digest in chunks and base64-decodes it in the same pass. `payload` is nil when the text
    /// is not canonical standard base64.
    private func digestAndDecode(
        _ raw: UnsafeBufferPointer<UInt8>, signature: [UInt8],
        key: KeyRing.Key
    ) -> (holds: Bool, payload: OwnedBytes?) {
        guard let ctx = EVP_MD_CTX_new() else { return (false, nil) }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestVerifyInit(ctx, nil, keyRing.sha256, nil, key.pkey) == 1 else {
            ERR_clear_error()
            return (false, nil)
        }
        var decoder = StreamingBase64Decoder(capacity: raw.count / 4 * 3 + 3)
        var escapeProblem = false
        // Runs without a backslash (all of it, unless the server escaped `/` as `\/`) go to
        // the digest and the decoder straight from the envelope; only escapes are rewritten.
        func feed(_ run: UnsafeBufferPointer<UInt8>) {
            guard run.count > 0 else { return }
            _ = EVP_DigestVerifyUpdate(ctx, run.baseAddress, run.count)
            decoder.feed(run)
        }
        var position = 0
        var one: UInt8 = 0
        while position < raw.count {
            let rest = UnsafeBufferPointer(rebasing: raw[position...])
            guard let base = rest.baseAddress, let found = memchr(base, Int32(UInt8(ascii: "\\")), rest.count) else {
                feed(rest)
                break
            }
            let offset = UnsafeRawPointer(found) - UnsafeRawPointer(base)
            feed(UnsafeBufferPointer(rebasing: rest[0..<offset]))
            position += offset + 1
            guard position < raw.count else {
                escapeProblem = true
                break
            }
            let escape = raw[position]
            position += 1
            switch escape {
            case UInt8(ascii: "/"), UInt8(ascii: "\\"), UInt8(ascii: "\""): one = escape
            case UInt8(ascii: "u") where position + 4 <= raw.count:
                var value: UInt32 = 0
                for offset in 0..<4 {
                    let digit = raw[position + offset]
                    value = value << 4 | UInt32(digit <= 0x39 ? digit &- 0x30 : (digit | 0x20) &- 0x57)
                }
                position += 4
                // Only ASCII can be base64 (and signed as one byte); anything else fails below.
                if value < 0x80 {
                    one = UInt8(value)
                } else {
                    escapeProblem = true
                    one = 0
                }
            default:
                // \b \f \n \r \t: control characters, never base64.
                escapeProblem = true
                one = 0
            }
            withUnsafePointer(to: &one) { feed(UnsafeBufferPointer(start: $0, count: 1)) }
        }
        let result = signature.withUnsafeBufferPointer { EVP_DigestVerifyFinal(ctx, $0.baseAddress, $0.count) }
        if result != 1 { ERR_clear_error() }
        let decoded = decoder.finish()
        let payload = escapeProblem ? nil : decoded
        return (result == 1 && !escapeProblem, payload)
    }
}

/// Standard base64 with padding, fed in chunks, with `Base64Strict`'s rules: nothing but the
/// alphabet, padding only at the very end, no stray bits.
struct StreamingBase64Decoder {
    private static let table: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(byte)] = UInt8(index)
        }
        return table
    }()

    private let output: UnsafeMutablePointer<UInt8>?
    private let capacity: Int
    private var written = 0
    private var bits: UInt32 = 0
    private var pending = 0
    private var padding = 0
    private var failed = false

    init(capacity: Int) {
        self.capacity = capacity
        output = malloc(max(1, capacity))?.assumingMemoryBound(to: UInt8.self)
        if output == nil { failed = true }
    }

    mutating func feed(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard !failed, let output else { return }
        Self.table.withUnsafeBufferPointer { table in
            var index = 0
            // Whole quads while nothing is pending and no padding has been seen: the hot loop.
            if pending == 0 && padding == 0 {
                let quads = bytes.count / 4
                let limit = min(quads, (capacity - written) / 3)
                var at = written
                while index < limit * 4 {
                    let a = table[Int(bytes[index])]
                    let b = table[Int(bytes[index + 1])]
                    let c = table[Int(bytes[index + 2])]
                    let d = table[Int(bytes[index + 3])]
                    if (a | b | c | d) & 0xC0 != 0 { break }  // not the alphabet ('=' too): the slow path
                    let bits = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                    output[at] = UInt8(truncatingIfNeeded: bits >> 16)
                    output[at + 1] = UInt8(truncatingIfNeeded: bits >> 8)
                    output[at + 2] = UInt8(truncatingIfNeeded: bits)
                    at += 3
                    index += 4
                }
                written = at
            }
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                if byte == UInt8(ascii: "=") {
                    padding += 1
                    bits <<= 6
                    pending += 1
                    if padding > 2 {
                        failed = true
                        return
                    }
                } else {
                    let value = table[Int(byte)]
                    if value == 0xFF || padding > 0 {
                        failed = true
                        return
                    }
                    bits = bits << 6 | UInt32(value)
                    pending += 1
                }
                if pending == 4 {
                    guard written + 3 <= capacity else {
                        failed = true
                        return
                    }
                    output[written] = UInt8(truncatingIfNeeded: bits >> 16)
                    output[written + 1] = UInt8(truncatingIfNeeded: bits >> 8)
                    output[written + 2] = UInt8(truncatingIfNeeded: bits)
                    written += 3
                    bits = 0
                    pending = 0
                    if padding > 0 {
                        // Padding ends the text: the quad that holds it must be the last, and
                        // the bits it stands for must be zero.
                        if output[written - 1] != 0 || (padding == 2 && output[written - 2] != 0) {
                            failed = true
                            return
                        }
                        written -= padding
                        padding += 10  // anything more fails
                    }
                }
            }
        }
    }

    /// The decoded bytes, or nil when the text was not canonical base64. Consumes the decoder.
    mutating func finish() -> OwnedBytes? {
        if failed || pending != 0 {
            free(output)
            return nil
        }
        return OwnedBytes(taking: output, count: written)
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
