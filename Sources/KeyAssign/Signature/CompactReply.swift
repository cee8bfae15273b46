/// A trusted reply kept as what its signature covers, and no more (schema migration 8): the
/// signed payload (`response_base64` decoded), the signature as bytes, and the key name
/// (`private_key_used`). The rest of an envelope proves nothing: `response` is an unsigned
/// copy of the payload, and base64 text is a third larger than its bytes.
///
/// The signature is over the ASCII of `response_base64`, not over the payload; the payload is
/// kept only when encoding it again gives that text byte for byte (a trusted reply's always
/// does: `Base64Strict` admits one spelling per payload, and `init?(envelope:)` checks it), so
/// the signed bytes are rebuilt exactly. `envelope` is that rebuild: a reply `keyassign verify`
/// and `ReplyVerifier` check like any other, signed text and signature identical to what
/// arrived; only its unsigned parts (member order, `response`'s spelling) may differ.
package struct CompactReply: Sendable, Hashable {
    package var payload: [UInt8]
    package var signature: [UInt8]
    package var keyName: String

    package init(payload: [UInt8], signature: [UInt8], keyName: String) {
        self.payload = payload
        self.signature = signature
        self.keyName = keyName
    }

    /// The signed parts of an envelope, or nil when it is not one whose signed text can be
    /// rebuilt from its payload (then the envelope is kept whole).
    package init?(envelope: [UInt8]) {
        guard let root = try? StrictJSONParser.parse(envelope),
            let signedText = root["response_base64"]?.stringValue,
            let keyName = root["private_key_used"]?.stringValue,
            let signatureText = root["signature"]?.stringValue,
            let payload = Base64Strict.decode(signedText.utf8),
            let signature = Base64Strict.decode(signatureText.utf8),
            Self.base64(payload).elementsEqual(signedText.utf8)
        else { return nil }
        self.init(payload: payload, signature: signature, keyName: keyName)
    }

    /// The envelope rebuilt: `response` is the payload itself when it is a JSON object (as the
    /// server's copy must equal it), else `{}`, so that an edited payload is judged by its
    /// signature first, as a received one would be.
    package var envelope: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(payload.count * 2 + signature.count * 4 / 3 + keyName.utf8.count + 96)
        out += Array(#"{"response":"#.utf8)
        if case .object? = try? StrictJSONParser.parse(payload) {
            out += payload
        } else {
            out += Array("{}".utf8)
        }
        out += Array(#","response_base64":""#.utf8)
        out += Self.base64(payload)
        out += Array(#"","private_key_used":"#.utf8)
        Self.appendJSONString(keyName, to: &out)
        out += Array(#","signature":""#.utf8)
        out += Self.base64(signature)
        out += Array(#""}"#.utf8)
        return out
    }

    /// Verifies the stored form offline, exactly as `audit` verifies a stored envelope.
    package func verify(with verifier: ReplyVerifier) -> ReplyVerdict {
        verifier.verify(envelope, maxAge: nil)
    }

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Standard base64 with padding (RFC 4648 §4), as PHP's `base64_encode` writes it.
    static func base64(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= bytes.count {
            let bits = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            out += [
                alphabet[Int(bits >> 18 & 63)], alphabet[Int(bits >> 12 & 63)], alphabet[Int(bits >> 6 & 63)],
                alphabet[Int(bits & 63)],
            ]
            index += 3
        }
        let rest = bytes.count - index
        if rest > 0 {
            let bits = UInt32(bytes[index]) << 16 | (rest == 2 ? UInt32(bytes[index + 1]) << 8 : 0)
            out.append(alphabet[Int(bits >> 18 & 63)])
            out.append(alphabet[Int(bits >> 12 & 63)])
            out.append(rest == 2 ? alphabet[Int(bits >> 6 & 63)] : UInt8(ascii: "="))
            out.append(UInt8(ascii: "="))
        }
        return out
    }

    /// A JSON string literal: quote, backslash and control characters escaped.
    static func appendJSONString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += Array("\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 15)])
            default:
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
