/// What a run keeps of what the server said, so that the API key never reaches the
/// database, the logs or the run summary, even when a server echoes it back.
///
/// - A trusted reply is kept compact (`compact`: what its signature covers, `CompactReply`).
/// - Any other body that parses as a reply envelope is stored in full: it is the evidence
///   `audit` re-verifies, and a few hundred bytes.
/// - Anything else (a proxy's or a framework's error page, plain text, truncated JSON) is
///   stored with every spelling of the API key replaced (`SecretRedactor`), and only its
///   first `prefixLimit` bytes, followed by a line giving its full size and the SHA-256 of
///   the redacted whole. The top of an error page says what went wrong; the rest is where
///   debug pages dump the request, in forms nobody can list in advance.
/// - An envelope that carries the key in any spelling (no real server echoes it there) is
///   stored redacted too; `audit` then reports it as no longer verifying, if the key was
///   in what was signed.
/// - Error texts built from a reply (the verifier's detail, a signed message) are redacted
///   before they are logged, stored or summarised.
package struct ReplyRedaction: Sendable {
    /// How much of a body that is not an envelope is kept.
    static let prefixLimit = 2048

    private let redactor: SecretRedactor?

    package init(apiKey: String) {
        redactor = SecretRedactor(secret: apiKey)
    }

    /// What goes into `attempts.reply` for `body`.
    func stored(_ body: [UInt8]?, verdict: ReplyVerdict?) -> [UInt8]? {
        guard let body, !body.isEmpty else { return body }
        let (redacted, occurrences) = redactor?.redact(body) ?? (body, 0)
        let isEnvelope = verdict?.isEnvelope ?? ReplyVerifier.isEnvelope(body)
        if isEnvelope || redacted.count <= Self.prefixLimit {
            return occurrences == 0 ? body : redacted
        }
        var cut = Self.prefixLimit
        // Never end inside a UTF-8 sequence: the prefix stays readable text.
        while cut > 0 && redacted[cut] & 0xC0 == 0x80 { cut -= 1 }
        let digest =
            (try? SHA256Digest()).map { digest in
                redacted.withUnsafeBytes { digest.update($0) }
                return digest.finalHex()
            } ?? "unavailable"
        let note =
            "\n[keyassign: not a reply envelope; \(body.count) bytes in all, the first \(cut) kept"
            + (occurrences > 0 ? ", the API key redacted \(occurrences) time\(occurrences == 1 ? "" : "s")" : "")
            + "; sha256 of the redacted whole \(digest)]\n"
        return Array(redacted[..<cut]) + Array(note.utf8)
    }

    /// A trusted reply's compact form (`CompactReply`), kept instead of its envelope; nil for
    /// any other reply, and for one whose signed payload holds the API key in any spelling
    /// (then the envelope is kept redacted, as before). Only the payload is searched: the
    /// signature is the server's bytes, the key name is one of ours, and nothing else of the
    /// envelope is kept.
    func compact(_ body: [UInt8]?, verdict: ReplyVerdict?) -> CompactReply? {
        guard case .trusted(let payload)? = verdict, payload.signingKey != nil, let body,
            let compact = CompactReply(envelope: body)
        else { return nil }
        if let redactor, redactor.redact(compact.payload).occurrences > 0 { return nil }
        return compact
    }

    /// The classification with the API key taken out of its texts.
    func classification(_ classification: Classification) -> Classification {
        guard let redactor else { return classification }
        var result = classification
        result.error = result.error.map(redactor.redact)
        result.authStop = result.authStop.map(redactor.redact)
        return result
    }
}
