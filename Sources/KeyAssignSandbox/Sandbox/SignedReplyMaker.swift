import Foundation
import Synchronization

/// Builds reply envelopes exactly as the Key Manager server does: the compact JSON of
/// `response`, its base64, and an RSA signature over the ASCII of that base64 string.
final class SignedReplyMaker: Sendable {
    private let signer: ReplySigner
    /// What `private_key_used` says: `global`, or `product` for a product's own key pair.
    let keyName: String
    /// PHP's `json_encode` writes `/` as `\/` unless told not to, and the real server's raw
    /// bodies look like its output: base64 and signatures are full of `/`.
    let escapesSlashes: Bool
    /// The signed text changes only with the code and the second, so a handful of entries
    /// saves one ~1 ms RSA operation per reply. Cleared when full rather than evicting
    /// one by one: it refills within a second.
    private let cache = Mutex<[String: String]>([:])
    private let cacheLimit: Int

    /// `caching: false` signs every reply (for benchmarks).
    init(signer: ReplySigner, keyName: String = "global", escapesSlashes: Bool = true, caching: Bool = true) {
        self.signer = signer
        self.keyName = keyName
        self.escapesSlashes = escapesSlashes
        cacheLimit = caching ? 256 : 0
    }

    /// `corruptSignature` flips one bit of a valid signature (the bad-signature fault);
    /// `codeAsString` writes `"code":"800"`, as PHP does when the code comes from a string.
    func envelope(
        code: Int, message: String, timestamp: Int, corruptSignature: Bool = false,
        codeAsString: Bool = false
    ) throws -> [UInt8] {
        let codeText = codeAsString ? "\"\(code)\"" : "\(code)"
        let response =
            "{\"code\":\(codeText),\"message\":\(Self.jsonString(message, escapingSlashes: escapesSlashes)),"
            + "\"timestamp\":\(timestamp)}"
        let responseBase64 = Data(response.utf8).base64EncodedString()
        var signature = try signature(for: responseBase64)
        if corruptSignature, var bytes = Data(base64Encoded: signature), !bytes.isEmpty {
            bytes[bytes.startIndex + bytes.count / 2] ^= 0x01
            signature = bytes.base64EncodedString()
        }
        // The signature is over the base64 text itself; the escapes are only how it is written.
        let text =
            "{\"response\":\(response),\"response_base64\":\(Self.base64String(responseBase64, escapingSlashes: escapesSlashes)),"
            + "\"private_key_used\":\(Self.jsonString(keyName, escapingSlashes: escapesSlashes)),"
            + "\"signature\":\(Self.base64String(signature, escapingSlashes: escapesSlashes))}"
        return Array(text.utf8)
    }

    /// A reply with a large payload (the key listing), signed afresh and never cached:
    /// `{"response":PAYLOAD,"response_base64":"…","private_key_used":"global","signature":"…"}`.
    /// `listingKeyName`: what its `private_key_used` says (a hostile listing may say anything).
    func envelope(payload: [UInt8], corruptSignature: Bool, listingKeyName: String = "global") throws -> [UInt8] {
        let base64 = Array(Data(payload).base64EncodedData())
        var signature = try signer.sign(base64)
        if corruptSignature, !signature.isEmpty { signature[signature.count / 2] ^= 0x01 }
        let signatureText = Data(signature).base64EncodedString()
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + base64.count + signatureText.utf8.count + 100)
        out.append(contentsOf: "{\"response\":".utf8)
        out.append(contentsOf: payload)
        out.append(contentsOf: ",\"response_base64\":\"".utf8)
        out.append(contentsOf: base64)
        out.append(contentsOf: "\",\"private_key_used\":".utf8)
        out.append(contentsOf: Self.jsonString(listingKeyName).utf8)
        out.append(contentsOf: ",\"signature\":\"".utf8)
        out.append(contentsOf: signatureText.utf8)
        out.append(contentsOf: "\"}".utf8)
        return out
    }

    private func signature(for responseBase64: String) throws -> String {
        guard cacheLimit > 0 else { return try signer.signBase64(responseBase64) }
        if let cached = cache.withLock({ $0[responseBase64] }) { return cached }
        // Signed outside the lock: two threads may sign the same text once each, which is
        // cheaper than making every other reply wait for the RSA operation.
        let signature = try signer.signBase64(responseBase64)
        cache.withLock { entries in
            if entries.count >= cacheLimit { entries.removeAll(keepingCapacity: true) }
            entries[responseBase64] = signature
        }
        return signature
    }

    /// `jsonString` for base64 text, whose only character JSON may escape is `/`: a byte loop,
    /// since every reply carries two of them.
    static func base64String(_ base64: String, escapingSlashes: Bool) -> String {
        var out: [UInt8] = [UInt8(ascii: "\"")]
        out.reserveCapacity(base64.utf8.count + 80)
        for byte in base64.utf8 {
            if byte == UInt8(ascii: "/") && escapingSlashes { out.append(UInt8(ascii: "\\")) }
            out.append(byte)
        }
        out.append(UInt8(ascii: "\""))
        return String(decoding: out, as: UTF8.self)
    }

    /// PHP's json_encode of a string: quotes, backslashes, control characters and, unless
    /// `escapingSlashes` is false (`JSON_UNESCAPED_SLASHES`), slashes (`\/`) escaped.
    static func jsonString(_ text: String, escapingSlashes: Bool = true) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "/" where escapingSlashes: out += "\\/"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value > 0x7E:
                if scalar.value > 0xFFFF {
                    let v = scalar.value - 0x10000
                    out += String(format: "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF))
                } else {
                    out += String(format: "\\u%04x", scalar.value)
                }
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
