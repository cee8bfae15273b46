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
/// The steps are `EnvelopeVerifier`'s, the core `ListingVerifier` shares (docs/signatures.md,
/// "One verification core"); what is the reply's own is its payload: `code`, `message` and
/// `timestamp`, and any key configured under the name it gives.
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
        let core = EnvelopeVerifier(keyRing: keyRing, subject: "the reply", onlyName: nil)
        switch core.verify(envelope, maxAge: maxAge, now: now, read: Self.readPayload) {
        case .trusted(let payload, let signer, _, _):
            return .trusted(
                SignedPayload(
                    code: payload.code, message: payload.message, timestamp: payload.timestamp,
                    keyName: signer.identity.name, signingKey: signer.identity))
        case .untrusted(let reason, let detail):
            return .untrusted(reason, detail)
        }
    }

    /// Whether `body` has the envelope's shape (step 1 of `verify`: a JSON object with
    /// `response` and the three string fields), whatever its signature. For bodies that were
    /// not verified (a 5xx, a 429); a verdict answers the same question for the others.
    public static func isEnvelope(_ body: [UInt8]) -> Bool {
        body.withUnsafeBufferPointer { bytes in
            if case .success = SignedEnvelope.read(bytes, subject: "the reply") { return true }
            return false
        }
    }

    /// A reply's payload: an object with `code`, a string `message` and an integer `timestamp`.
    private static func readPayload(_ payload: OwnedBytes) -> Result<
        EnvelopeVerifier.ReadPayload<(code: Int, message: String, timestamp: Int64)>, EnvelopeVerifier.PayloadProblem
    > {
        let bytes = payload.buffer
        var scanner = JSONScanner(bytes)
        let fields: SignedFields
        do throws(JSONParseError) {
            guard scanner.peek() == UInt8(ascii: "{") else {
                try scanner.skipValue()
                try scanner.expectEnd()
                return .failure(.init(reason: .payloadNotJSON, detail: "the signed payload is JSON but not an object"))
            }
            let members = try scanner.objectMembers()
            try scanner.expectEnd()
            fields = try SignedFields(members: members, in: bytes)
        } catch {
            return .failure(
                .init(reason: .payloadNotJSON, detail: "the signed payload is not JSON: \(error.description)"))
        }
        guard fields.problems.isEmpty, let code = fields.code, let message = fields.message,
            let timestamp = fields.timestamp
        else {
            return .failure(
                .init(
                    reason: .payloadMissingFields,
                    detail: "the signed payload lacks " + fields.problems.joined(separator: ", ")))
        }
        return .success(.init(payload: (code, message, timestamp), code: code, timestamp: timestamp))
    }

    /// Text from outside (key names from a reply, file names) must not inject control
    /// characters into messages or break tab-separated columns: `TerminalText`'s visible
    /// forms, of at most `limit` characters of the text.
    static func printable(_ text: String, limit: Int = 64) -> String {
        TerminalText.escape(text, limit: limit)
    }
}
