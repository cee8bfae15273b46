/// The envelope around a signed reply or listing, read by `JSONScanner` (step 1 of
/// docs/signatures.md): a JSON object with a `response` object and the string members
/// `response_base64`, `private_key_used` and `signature`; any other member is allowed but, like
/// everything in the envelope, must be valid JSON without duplicate names. Members are kept as
/// ranges of the text: nothing is copied but the two short strings.
struct SignedEnvelope {
    /// The unsigned `response` object's text.
    let response: Range<Int>
    /// The `response_base64` string's text between its quotes, escapes still in it.
    let signedText: Range<Int>
    let keyName: String
    let signatureText: String

    /// Why `bytes` is not an envelope: `envelopeNotJSON` or `envelopeMissingFields`, with a
    /// detail that calls it `subject` ("the reply", "the listing").
    struct Refusal: Error {
        let reason: UntrustedReason
        let detail: String
    }

    static func read(_ bytes: UnsafeBufferPointer<UInt8>, subject: String) -> Result<SignedEnvelope, Refusal> {
        var scanner = JSONScanner(bytes)
        var members: [String: Range<Int>] = [:]
        do throws(JSONParseError) {
            if scanner.peek() == UInt8(ascii: "{") {
                for member in try scanner.objectMembers() { members[member.name] = member.value }
                try scanner.expectEnd()
            } else {
                try scanner.skipValue()
                try scanner.expectEnd()
                return .failure(Refusal(reason: .envelopeNotJSON, detail: "\(subject) is JSON but not an object"))
            }
        } catch {
            return .failure(Refusal(reason: .envelopeNotJSON, detail: "\(subject) is not JSON: \(error.description)"))
        }
        /// A member that is a string: its text between the quotes, and whether it has escapes.
        func string(_ name: String) -> (range: Range<Int>, escaped: Bool)? {
            guard let range = members[name], bytes[range.lowerBound] == UInt8(ascii: "\"") else { return nil }
            var reader = JSONScanner(bytes, position: range.lowerBound)
            return try? reader.scanString()
        }
        func decoded(_ name: String) -> String? {
            string(name).flatMap { scanned in try? JSONScanner(bytes).decodeString(scanned) }
        }
        var missing: [String] = []
        let response = members["response"].flatMap { bytes[$0.lowerBound] == UInt8(ascii: "{") ? $0 : nil }
        if response == nil { missing.append("response (object)") }
        let signed = string("response_base64")
        if signed == nil { missing.append("response_base64 (string)") }
        let keyName = decoded("private_key_used")
        if keyName == nil { missing.append("private_key_used (string)") }
        let signatureText = decoded("signature")
        if signatureText == nil { missing.append("signature (string)") }
        guard missing.isEmpty, let response, let signed, let keyName, let signatureText else {
            return .failure(
                Refusal(reason: .envelopeMissingFields, detail: "\(subject) lacks " + missing.joined(separator: ", ")))
        }
        return .success(
            SignedEnvelope(response: response, signedText: signed.range, keyName: keyName, signatureText: signatureText)
        )
    }
}
