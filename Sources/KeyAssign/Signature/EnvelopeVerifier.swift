/// The one verification core behind `ReplyVerifier` and `ListingVerifier`: the steps of
/// docs/signatures.md, in their order, with the same reader (`JSONScanner`), base64
/// (`Base64Strict`), signature path (`SignatureCheck` over `KeyRing.candidates`), comparison of
/// the signed payload with the unsigned `response` copy (`JSONEquality`) and freshness rule for
/// both. What differs stays with each verifier: which key name may sign (`onlyName`), and how
/// the payload beyond its `code`, `message` and `timestamp` is read (`read`).
///
/// The envelope is read in place and never parsed into values; the payload is decoded once,
/// into memory the result owns.
struct EnvelopeVerifier {
    let keyRing: KeyRing
    /// What messages call the envelope: "the reply", "the listing".
    let subject: String
    /// The one key name this kind of envelope may be signed with, or nil for any configured.
    let onlyName: String?

    /// What `read` says of a payload it cannot use.
    struct PayloadProblem: Error {
        /// `payloadNotJSON` or `payloadMissingFields`.
        let reason: UntrustedReason
        let detail: String
    }

    /// A payload `read` could use, with the two members the core checks itself.
    struct ReadPayload<Payload> {
        let payload: Payload
        let code: Int
        let timestamp: Int64
    }

    enum Outcome<Payload> {
        case trusted(Payload, signer: KeyRing.Key, keyName: String, signatureText: String)
        case untrusted(UntrustedReason, String)
    }

    /// `maxAge` nil: no freshness check. `read` gets the decoded payload only once the
    /// signature holds; the unsigned copy is compared with it only once `read` accepts it.
    func verify<Payload>(
        _ envelope: UnsafeBufferPointer<UInt8>, maxAge: Double?, now: Double,
        read: (OwnedBytes) -> Result<ReadPayload<Payload>, PayloadProblem>
    ) -> Outcome<Payload> {
        let fields: SignedEnvelope
        switch SignedEnvelope.read(envelope, subject: subject) {
        case .failure(let refusal): return .untrusted(refusal.reason, refusal.detail)
        case .success(let read): fields = read
        }
        let signer: KeyRing.Key
        let decoded: OwnedBytes?
        switch SignatureCheck(keyRing: keyRing).verify(
            signedText: UnsafeBufferPointer(rebasing: envelope[fields.signedText]), keyName: fields.keyName,
            signatureText: fields.signatureText, onlyName: onlyName)
        {
        case .failure(let refusal): return .untrusted(refusal.reason, refusal.detail)
        case .success(let found): (signer, decoded) = found
        }
        guard let decoded else {
            return .untrusted(.payloadNotJSON, "response_base64 is signed but is not standard base64")
        }
        let payload: ReadPayload<Payload>
        switch read(decoded) {
        case .failure(let problem): return .untrusted(problem.reason, problem.detail)
        case .success(let value): payload = value
        }
        guard JSONEquality.equal(UnsafeBufferPointer(rebasing: envelope[fields.response]), decoded.buffer) else {
            return .untrusted(
                .payloadMismatch,
                "the unsigned response differs from the signed payload (signed code \(payload.code)); \(subject) was altered"
            )
        }
        if let stale = Self.staleness(of: payload.timestamp, maxAge: maxAge, now: now) {
            return .untrusted(.stale, "\(subject) was \(stale)")
        }
        return .trusted(payload.payload, signer: signer, keyName: fields.keyName, signatureText: fields.signatureText)
    }

    /// Why a signed `timestamp` is too far from `now` ("signed at …"), or nil when it is not
    /// (or `maxAge` is nil).
    static func staleness(of timestamp: Int64, maxAge: Double?, now: Double) -> String? {
        guard let maxAge, !(abs(now - Double(timestamp)) <= maxAge) else { return nil }
        let age = now - Double(timestamp)
        // Timestamps come from outside: any Int64, so never convert the age back to an integer.
        let shown = age.magnitude < 1e15 ? String(Int64(age.rounded())) : String(age)
        return "signed at \(timestamp), \(shown) s before now; more than the allowed \(maxAge) s either way"
    }
}
