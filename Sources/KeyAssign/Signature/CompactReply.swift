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
    /// rebuilt from its payload (then the envelope is kept whole). On the run's hot path, after
    /// the verifier parsed the same bytes: it walks the top-level members in place
    /// (`JSONScanner`) rather than building a second tree of values, and decodes base64 from
    /// the envelope's own bytes.
    package init?(envelope: [UInt8]) {
        let parts: (payload: [UInt8], signature: [UInt8], keyName: String)? = envelope.withUnsafeBufferPointer {
            buffer in
            var scanner = JSONScanner(buffer)
            guard let members = try? scanner.objectMembers(), (try? scanner.expectEnd()) != nil else { return nil }
            // Where a member's string value lies, as the scanner checked it: between its quotes.
            func inner(_ name: String) -> Range<Int>? {
                guard let range = members.first(where: { $0.name == name })?.value, range.count >= 2,
                    buffer[range.lowerBound] == UInt8(ascii: "\""), buffer[range.upperBound - 1] == UInt8(ascii: "\"")
                else { return nil }
                return (range.lowerBound + 1)..<(range.upperBound - 1)
            }
            // Base64 text: PHP writes `/` as `\/`; any other escape is not base64.
            func base64(_ name: String) -> [UInt8]? {
                guard let range = inner(name) else { return nil }
                let text = UnsafeBufferPointer(rebasing: buffer[range])
                guard text.contains(UInt8(ascii: "\\")) else { return Self.decodeCanonicalBase64(text) }
                var plain = true
                let unescaped = [UInt8](unsafeUninitializedCapacity: text.count) { out, initialized in
                    var index = 0
                    var written = 0
                    while index < text.count {
                        if text[index] == UInt8(ascii: "\\") {
                            guard index + 1 < text.count, text[index + 1] == UInt8(ascii: "/") else {
                                plain = false
                                break
                            }
                            index += 1
                        }
                        out[written] = text[index]
                        written += 1
                        index += 1
                    }
                    initialized = written
                }
                guard plain else { return nil }
                return unescaped.withUnsafeBufferPointer { Self.decodeCanonicalBase64($0) }
            }
            guard let payload = base64("response_base64"), let signature = base64("signature"),
                let keyRange = inner("private_key_used"),
                let keyName = try? JSONScanner(buffer).decodeString(
                    (keyRange, buffer[keyRange].contains(UInt8(ascii: "\\"))))
            else { return nil }
            return (payload, signature, keyName)
        }
        guard let parts else { return nil }
        self.init(payload: parts.payload, signature: parts.signature, keyName: parts.keyName)
    }

    /// The bytes of `text` when it is canonical base64 (`Base64Strict`, the one decoder).
    private static func decodeCanonicalBase64(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        Base64Strict.decodeWhole(text).map { Array($0.buffer) }
    }

    /// The envelope rebuilt: `response` is the payload itself when it is a JSON object (as the
    /// server's copy must equal it), else `{}`, so that an edited payload is judged by its
    /// signature first, as a received one would be.
    package var envelope: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(payload.count * 2 + signature.count * 4 / 3 + keyName.utf8.count + 96)
        out += Array(#"{"response":"#.utf8)
        if Self.isJSONObject(payload) {
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

    /// Standard base64 with padding, as PHP's `base64_encode` writes it.
    static func base64(_ bytes: [UInt8]) -> [UInt8] { Base64Strict.encode(bytes) }

    /// Whether `bytes` is one JSON object and nothing more, read by the one strict reader.
    private static func isJSONObject(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { buffer in
            var scanner = JSONScanner(buffer)
            guard (try? scanner.objectMembers()) != nil else { return false }
            return (try? scanner.expectEnd()) != nil
        }
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
