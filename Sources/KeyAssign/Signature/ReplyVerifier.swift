import COpenSSL

/// What a signed reply said, once its signature holds and its payload is usable.
public struct SignedPayload: Sendable, Equatable {
    public let code: Int
    public let message: String
    public let timestamp: Int64
    /// The key that signed it (`private_key_used`).
    public let keyName: String
    /// Which configured key of that name verified it (nil only for payloads made by hand).
    public let signingKey: SigningKey?

    public init(code: Int, message: String, timestamp: Int64, keyName: String, signingKey: SigningKey? = nil) {
        self.code = code
        self.message = message
        self.timestamp = timestamp
        self.keyName = keyName
        self.signingKey = signingKey
    }
}

public enum UntrustedReason: String, Sendable, CaseIterable {
    // The signature does not hold (verify exit 1).
    case envelopeNotJSON = "envelope_not_json"
    case envelopeMissingFields = "envelope_missing_fields"
    case unknownKey = "unknown_key"
    /// The server sent the literal "Private key not set": it has no key to sign with.
    case unsigned = "unsigned"
    case signatureNotBase64 = "signature_not_base64"
    case signatureWrongLength = "signature_wrong_length"
    case badSignature = "bad_signature"
    // The signature holds but the payload is unusable (verify exit 2).
    case payloadNotJSON = "payload_not_json"
    case payloadMissingFields = "payload_missing_fields"
    case payloadMismatch = "payload_mismatch"
    case stale = "stale"

    /// True when the reply cannot be attributed to the server at all; false when the server
    /// signed it but what it signed is unusable here.
    public var isSignatureProblem: Bool {
        switch self {
        case .envelopeNotJSON, .envelopeMissingFields, .unknownKey, .unsigned,
            .signatureNotBase64, .signatureWrongLength, .badSignature:
            return true
        case .payloadNotJSON, .payloadMissingFields, .payloadMismatch, .stale:
            return false
        }
    }
}

public enum ReplyVerdict: Sendable, Equatable {
    case trusted(SignedPayload)
    case untrusted(UntrustedReason, String)

    /// The configured key that verified a trusted reply.
    public var signingKey: SigningKey? {
        if case .trusted(let payload) = self { return payload.signingKey }
        return nil
    }

    /// False when the body is not an envelope at all (not JSON, or lacking its fields).
    public var isEnvelope: Bool {
        switch self {
        case .trusted: true
        case .untrusted(let reason, _): reason != .envelopeNotJSON && reason != .envelopeMissingFields
        }
    }

    /// How the verdict is stored in `attempts.verdict`: this, or the `UntrustedReason`'s raw
    /// value. `audit` reads it back.
    public static let trustedText = "trusted"

    public var storedText: String {
        switch self {
        case .trusted: Self.trustedText
        case .untrusted(let reason, _): reason.rawValue
        }
    }
}

/// Checks a reply envelope the way the server signs it: RSASSA-PKCS1-v1_5 with SHA-256 over
/// the ASCII bytes of the `response_base64` string value as received (its JSON escapes
/// undone: PHP's encoder may write `/` as `\/`, and the signature is over `/`), with the keys named by
/// `private_key_used` (trusted when any of them verifies it); only then is the signed payload
/// decoded and compared with the unsigned `response` copy.
///
/// Thread-safe and allocation-light: each call uses its own EVP_MD_CTX over the ring's keys.
public struct ReplyVerifier: Sendable {
    public let keyRing: KeyRing

    /// The server's literal signature when it has no private key configured.
    public static let unsignedMarker = "Private key not set"

    public init(keyRing: KeyRing) { self.keyRing = keyRing }

    public func verify(_ envelope: [UInt8], maxAge: Double? = nil, now: Double = Timestamps.now()) -> ReplyVerdict {
        envelope.withUnsafeBufferPointer { verify($0, maxAge: maxAge, now: now) }
    }

    public func verify(_ envelope: UnsafeBufferPointer<UInt8>, maxAge: Double? = nil, now: Double = Timestamps.now())
        -> ReplyVerdict
    {
        let root: JSONValue
        do { root = try StrictJSONParser.parse(envelope) } catch {
            return .untrusted(.envelopeNotJSON, "the reply is not JSON: \(error.description)")
        }
        guard case .object = root else {
            return .untrusted(.envelopeNotJSON, "the reply is JSON but not an object")
        }
        var missing: [String] = []
        let response = root["response"]
        if case .object = response {} else { missing.append("response (object)") }
        let signedText = root["response_base64"]?.stringValue
        if signedText == nil { missing.append("response_base64 (string)") }
        let keyName = root["private_key_used"]?.stringValue
        if keyName == nil { missing.append("private_key_used (string)") }
        let signatureText = root["signature"]?.stringValue
        if signatureText == nil { missing.append("signature (string)") }
        guard missing.isEmpty, let response, let signedText, let keyName, let signatureText else {
            return .untrusted(.envelopeMissingFields, "the reply lacks " + missing.joined(separator: ", "))
        }

        let sized: [KeyRing.Key]
        let signature: [UInt8]
        switch keyRing.candidates(keyName: keyName, signatureText: signatureText) {
        case .failure(let refusal): return .untrusted(refusal.reason, refusal.detail)
        case .success(let found): (sized, signature) = found
        }
        // Native Swift strings are contiguous UTF-8, so this borrows the bytes without a copy.
        let signer =
            signedText.utf8.withContiguousStorageIfAvailable { firstKey(of: sized, verifying: signature, over: $0) }
            ?? Array(signedText.utf8).withUnsafeBufferPointer { firstKey(of: sized, verifying: signature, over: $0) }
        guard let signer else { return .untrusted(.badSignature, keyRing.badSignatureDetail(keyName: keyName)) }
        return checkPayload(signedText, response: response, signer: signer.identity, maxAge: maxAge, now: now)
    }

    /// Whether `body` has the envelope's shape (step 1 of `verify`: a JSON object with
    /// `response` and the three string fields), whatever its signature. For bodies that were
    /// not verified (a 5xx, a 429); a verdict answers the same question for the others.
    public static func isEnvelope(_ body: [UInt8]) -> Bool {
        guard let root = try? StrictJSONParser.parse(body), case .object = root["response"] else { return false }
        return root["response_base64"]?.stringValue != nil && root["private_key_used"]?.stringValue != nil
            && root["signature"]?.stringValue != nil
    }

    private func firstKey(
        of keys: [KeyRing.Key], verifying signature: [UInt8],
        over message: UnsafeBufferPointer<UInt8>
    ) -> KeyRing.Key? {
        keys.first { checkSignature(signature, over: message, key: $0) }
    }

    private func checkSignature(_ signature: [UInt8], over message: UnsafeBufferPointer<UInt8>, key: KeyRing.Key)
        -> Bool
    {
        guard let ctx = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(ctx) }
        let result = signature.withUnsafeBufferPointer { sig -> Int32 in
            guard EVP_DigestVerifyInit(ctx, nil, keyRing.sha256, nil, key.pkey) == 1 else { return -1 }
            return EVP_DigestVerify(ctx, sig.baseAddress, sig.count, message.baseAddress, message.count)
        }
        // A failed check leaves entries on this thread's error queue; clear them so they are
        // not blamed on a later, unrelated call.
        if result != 1 { ERR_clear_error() }
        return result == 1
    }

    private func checkPayload(
        _ signedText: String, response: JSONValue, signer: SigningKey,
        maxAge: Double?, now: Double
    ) -> ReplyVerdict {
        guard let payloadBytes = Base64Strict.decode(signedText.utf8) else {
            return .untrusted(.payloadNotJSON, "response_base64 is signed but is not standard base64")
        }
        let payload: JSONValue
        do { payload = try StrictJSONParser.parse(payloadBytes) } catch {
            return .untrusted(.payloadNotJSON, "the signed payload is not JSON: \(error.description)")
        }
        guard case .object = payload else {
            return .untrusted(.payloadNotJSON, "the signed payload is JSON but not an object")
        }
        var missing: [String] = []
        var code: Int?
        switch Self.code(payload["code"]) {
        case .success(let value): code = value
        case .failure(let problem): missing.append(problem.text)
        }
        let message = payload["message"]?.stringValue
        if message == nil { missing.append("message (string)") }
        let timestamp = payload["timestamp"]?.integerValue
        if timestamp == nil { missing.append("timestamp (integer)") }
        guard missing.isEmpty, let code, let message, let timestamp else {
            return .untrusted(.payloadMissingFields, "the signed payload lacks " + missing.joined(separator: ", "))
        }
        guard payload == response else {
            return .untrusted(
                .payloadMismatch,
                "the unsigned response differs from the signed payload (signed code \(code)); the reply was altered")
        }
        if let maxAge, !(abs(now - Double(timestamp)) <= maxAge) {
            let age = now - Double(timestamp)
            // Timestamps come from outside: any Int64, so never convert the age back to an integer.
            let shown = age.magnitude < 1e15 ? String(Int64(age.rounded())) : String(age)
            return .untrusted(
                .stale, "signed at \(timestamp), \(shown) s before now; more than the allowed \(maxAge) s either way")
        }
        return .trusted(
            SignedPayload(
                code: code, message: message, timestamp: timestamp, keyName: signer.name,
                signingKey: signer))
    }

    /// The longest code written as a string that is read: real codes have three digits, and
    /// this keeps any value far inside `Int`.
    static let maximumCodeDigits = 9

    struct CodeProblem: Error {
        let text: String
    }

    /// A code is a JSON integer or, as PHP servers write it, a string of ASCII digits
    /// (`"code":"800"`). Nothing looser: no sign, no blank, no fraction, no other digits.
    static func code(_ value: JSONValue?) -> Result<Int, CodeProblem> {
        switch value {
        case .number(let number)?:
            guard number.isInteger, let wide = Int64(number.literal), let code = Int(exactly: wide) else {
                return .failure(CodeProblem(text: "code (integer; got \(printable(number.literal, limit: 24)))"))
            }
            return .success(code)
        case .string(let text)?:
            let digits = text.utf8
            guard !digits.isEmpty else {
                return .failure(CodeProblem(text: "code (integer or string of digits; got an empty string)"))
            }
            guard digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
                return .failure(
                    CodeProblem(text: "code (integer or string of digits; got \"\(printable(text, limit: 24))\")"))
            }
            guard digits.count <= maximumCodeDigits, let code = Int(text) else {
                return .failure(
                    CodeProblem(
                        text:
                            "code (integer or string of digits; got a string of \(digits.count) digits, more than \(maximumCodeDigits))"
                    ))
            }
            return .success(code)
        case nil:
            return .failure(CodeProblem(text: "code (integer)"))
        case _?:
            return .failure(CodeProblem(text: "code (integer or string of digits)"))
        }
    }

    /// Text from outside (key names from a reply, file names) must not inject control
    /// characters into messages or break tab-separated columns: `TerminalText`'s visible
    /// forms, of at most `limit` characters of the text.
    static func printable(_ text: String, limit: Int = 64) -> String {
        TerminalText.escape(text, limit: limit)
    }
}
