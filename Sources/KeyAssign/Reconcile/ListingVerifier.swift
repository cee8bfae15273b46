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

/// Verifies a `get-license-keys` envelope exactly as `ReplyVerifier` verifies an assign reply:
/// both are `EnvelopeVerifier`, the one core (the same steps, reader, base64, signature path,
/// reasons and key ring; see docs/signatures.md). What is the listing's own: only the
/// `listingKeyName` key may sign it, and its payload is read into a `ListingIndex`. The core
/// works in one pass over text that may be hundreds of megabytes: the envelope is scanned, not
/// parsed into values; the signed `response_base64` text is fed to the digest and decoded in
/// the same loop; and the unsigned `response` is compared with the payload as text. Peak memory
/// is the envelope plus the decoded payload.
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
        let core = EnvelopeVerifier(keyRing: keyRing, subject: "the listing", onlyName: listingKeyName)
        switch core.verify(envelope.buffer, maxAge: maxAge, now: now, read: Self.readPayload) {
        case .trusted(let index, _, let keyName, let signatureText):
            return .trusted(VerifiedListing(index: index, keyName: keyName, signature: signatureText))
        case .untrusted(let reason, let detail):
            return .untrusted(reason, detail)
        }
    }

    /// Verifies a listing kept as its signed payload and signature (`listings.payload`, from
    /// migration 5 on): the signed text is the payload's base64, because only canonical
    /// base64 was accepted when it was fetched. No freshness check: this is `audit` of
    /// evidence kept.
    public func verifyStored(payload: OwnedBytes, signature signatureText: String, keyName: String) -> ListingVerdict {
        let check = SignatureCheck(keyRing: keyRing)
        if case .failure(let refusal) = check.verifyEncoded(
            payload: payload.buffer, keyName: keyName, signatureText: signatureText)
        {
            return .untrusted(refusal.reason, refusal.detail)
        }
        switch Self.readPayload(payload) {
        case .failure(let problem): return .untrusted(problem.reason, problem.detail)
        case .success(let read):
            return .trusted(VerifiedListing(index: read.payload, keyName: keyName, signature: signatureText))
        }
    }

    private static func readPayload(_ payload: OwnedBytes) -> Result<
        EnvelopeVerifier.ReadPayload<ListingIndex>, EnvelopeVerifier.PayloadProblem
    > {
        switch ListingParser.parse(payload) {
        case .failure(let failure):
            return .failure(
                .init(reason: failure.missingFields ? .payloadMissingFields : .payloadNotJSON, detail: failure.message))
        case .success(let index):
            return .success(.init(payload: index, code: index.code, timestamp: index.timestamp))
        }
    }
}
