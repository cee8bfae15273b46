import COpenSSL
import Foundation

/// The public keys replies may be signed with, by the name the server puts in
/// `private_key_used` (`global`, `product`, …). Each key is parsed and checked once, here,
/// so that a bad key file stops keyassign before any work instead of failing every reply.
///
/// Several keys may share a name: a vendor selling two products that each have their own
/// key pair gets replies that all say `product`, so a reply is tried against every key of
/// its name, in the order given.
///
/// Immutable after init; safe to share between threads (OpenSSL allows concurrent
/// verification with one EVP_PKEY as long as nobody modifies it).
public final class KeyRing: @unchecked Sendable {
    /// Key sizes keyassign accepts. Below 2048 bits a signature proves little; above 8192
    /// nobody issues keys, and a huge modulus would make every check slow.
    public static let acceptedBits = 2048...8192

    struct Key {
        let identity: SigningKey
        let source: String
        let pkey: OpaquePointer
        /// The modulus size in bytes: an RSA signature is exactly this long.
        let signatureLength: Int
    }

    /// By name, in the order the keys were given.
    private let keys: [String: [Key]]
    /// SHA-256 fetched once: implicit fetches on every verification cost a lock and a lookup.
    let sha256: OpaquePointer

    /// The names replies may use, sorted.
    public var names: [String] { keys.keys.sorted() }

    /// `specs` are `NAME=PATH` or a bare `PATH` (named `global`, the server-wide key).
    ///
    /// Splitting rule: a spec is `NAME=PATH` only when the text before its first `=` is a
    /// plausible name (letters, digits, `_`, `-`, at least one character); otherwise the whole
    /// spec is a path. So `product=/keys/a=b.pem` is the key `product` at `/keys/a=b.pem`,
    /// and `/keys/a=b.pem` is `global` at that path. A relative path whose first part looks
    /// like a name (`a=b.pem`) must be written `./a=b.pem` or `global=a=b.pem`.
    public convenience init(specs: [String]) throws {
        var sources: [Source] = []
        for spec in specs {
            let (name, path) = Self.split(spec)
            guard !path.isEmpty else {
                throw KeyAssignError(.config, "public key spec '\(spec)': no file path after '\(name)='")
            }
            sources.append(
                Source(
                    name: name, description: "public key \(path)", file: Self.absolute(path),
                    pem: try Self.readFile(path)))
        }
        try self.init(sources: sources)
    }

    /// Keys held in memory, by name (tests, the demo). The values are PEM text.
    public convenience init(pems: [String: String]) throws {
        try self.init(
            sources: pems.sorted { $0.key < $1.key }.map {
                Source(
                    name: $0.key, description: "public key '\($0.key)' (in memory)", file: nil,
                    pem: Array($0.value.utf8))
            })
    }

    private struct Source {
        var name: String
        var description: String
        var file: String?
        var pem: [UInt8]
    }

    private init(sources: [Source]) throws {
        guard let sha256 = EVP_MD_fetch(nil, "SHA256", nil) else {
            throw KeyAssignError(.config, "OpenSSL has no SHA-256: \(OpenSSLErrors.drain())")
        }
        var keys: [String: [Key]] = [:]
        func freeAll() {
            for key in keys.values.joined() { EVP_PKEY_free(key.pkey) }
            EVP_MD_free(sha256)
        }
        for source in sources {
            let key: Key
            do {
                key = try Self.parse(source)
            } catch {
                freeAll()
                throw error
            }
            // The same key twice under one name adds nothing, and usually means the file of
            // another product's key was meant: say so rather than leave that product unverifiable.
            if let earlier = keys[source.name]?.first(where: { $0.identity.sha256 == key.identity.sha256 }) {
                EVP_PKEY_free(key.pkey)
                freeAll()
                throw KeyAssignError(
                    .config,
                    "\(source.description): the same key (\(key.identity.fingerprint)) as \(earlier.source), both named '\(source.name)'; was another key meant?"
                )
            }
            keys[source.name, default: []].append(key)
        }
        self.keys = keys
        self.sha256 = sha256
    }

    deinit {
        for key in keys.values.joined() { EVP_PKEY_free(key.pkey) }
        EVP_MD_free(sha256)
    }

    /// The keys configured under `name`, in the order given; empty for an unknown name.
    func keys(named name: String) -> [Key] { keys[name] ?? [] }

    /// Why no key of the ring can have made a signature: the verdict's reason and detail.
    struct Refusal: Error {
        var reason: UntrustedReason
        var detail: String
    }

    /// The keys that could have made `signatureText` under `keyName`, and the signature's
    /// bytes: those of that name whose modulus matches the signature's length (a 2048-bit key
    /// and a 4096-bit one may share a name). Replies and listings choose keys this one way,
    /// so a signature is refused for the same reason, in the same words, wherever it arrives.
    ///
    /// `onlyName`: the one key name this kind of reply may be signed with (listings: `global`,
    /// or `--listing-key`); a signature by any other configured key is refused as an unknown key.
    func candidates(
        keyName: String, signatureText: String,
        onlyName: String? = nil
    ) -> Result<(keys: [Key], signature: [UInt8]), Refusal> {
        if signatureText == ReplyVerifier.unsignedMarker {
            return .failure(
                Refusal(
                    reason: .unsigned,
                    detail: "the server signs nothing: its signature field says \"\(ReplyVerifier.unsignedMarker)\""))
        }
        if let onlyName, keyName != onlyName {
            return .failure(
                Refusal(
                    reason: .unknownKey,
                    detail:
                        "signed with key \"\(ReplyVerifier.printable(keyName))\", but listings are signed by \"\(ReplyVerifier.printable(onlyName))\" (--listing-key NAME accepts another)"
                ))
        }
        let named = keys(named: keyName)
        guard !named.isEmpty else {
            return .failure(
                Refusal(
                    reason: .unknownKey,
                    detail:
                        "signed with key \"\(ReplyVerifier.printable(keyName))\", but keyassign only has public keys for: \(names.joined(separator: ", "))"
                ))
        }
        guard let signature = Base64Strict.decode(signatureText.utf8) else {
            return .failure(Refusal(reason: .signatureNotBase64, detail: "the signature is not standard base64"))
        }
        let sized = named.filter { $0.signatureLength == signature.count }
        guard !sized.isEmpty else {
            let lengths = Set(named.map(\.signatureLength)).sorted().map(String.init).joined(separator: " or ")
            return .failure(
                Refusal(
                    reason: .signatureWrongLength,
                    detail: "the signature is \(signature.count) bytes; key \"\(keyName)\" signs \(lengths)"))
        }
        return .success((sized, signature))
    }

    /// The detail of a signature that none of the candidates verified.
    func badSignatureDetail(keyName: String) -> String {
        let count = keys(named: keyName).count
        let tried = count == 1 ? "" : " (none of its \(count) keys)"
        return "the signature does not match response_base64 under key \"\(keyName)\"\(tried)"
    }

    /// Every configured key, by name and then in the order given.
    public var signingKeys: [SigningKey] { names.flatMap { keys(named: $0).map(\.identity) } }

    /// Stored with each attempt and shown later from any directory, so never relative.
    private static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        let directory = FileManager.default.currentDirectoryPath
        return (directory.hasSuffix("/") ? directory : directory + "/")
            + (path.hasPrefix("./") ? String(path.dropFirst(2)) : path)
    }

    static func split(_ spec: String) -> (name: String, path: String) {
        guard let equals = spec.firstIndex(of: "=") else { return ("global", spec) }
        let name = spec[..<equals]
        let plausible =
            !name.isEmpty
            && name.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
            }
        guard plausible else { return ("global", spec) }
        return (String(name), String(spec[spec.index(after: equals)...]))
    }

    /// A public key PEM is a few kilobytes at most.
    private static let maximumFileSize = 1 << 20

    private static func readFile(_ path: String) throws -> [UInt8] {
        switch SmallFile.contents(of: path, limit: maximumFileSize) {
        case .success(let bytes): return bytes
        case .failure(let failure): throw KeyAssignError(.config, "public key \(path): \(failure.description)")
        }
    }

    /// The labels of the PEM blocks in `text` (`PUBLIC KEY`, `RSA PUBLIC KEY`, `PRIVATE KEY`, …).
    static func pemLabels(_ text: String) -> [String] {
        var labels: [String] = []
        var rest = text[...]
        while let begin = rest.range(of: "-----BEGIN ") {
            let afterBegin = rest[begin.upperBound...]
            guard let end = afterBegin.range(of: "-----") else { break }
            labels.append(String(afterBegin[..<end.lowerBound]))
            rest = afterBegin[end.upperBound...]
        }
        return labels
    }

    private static func parse(_ input: Source) throws -> Key {
        let pem = input.pem
        let source = input.description
        // Look at the PEM labels first: they let the error say what the file is, which is
        // more useful to someone who picked the wrong file than a decoder's complaint.
        let labels = pemLabels(String(decoding: pem, as: UTF8.self))
        guard let label = labels.first else {
            throw KeyAssignError(
                .config,
                "\(source): not a PEM file (no '-----BEGIN' line); expected a PEM public key ('BEGIN PUBLIC KEY')")
        }
        guard labels.count == 1 else {
            throw KeyAssignError(
                .config,
                "\(source): holds \(labels.count) PEM blocks (\(labels.joined(separator: ", "))); expected exactly one public key"
            )
        }
        if label.contains("PRIVATE KEY") {
            throw KeyAssignError(
                .config,
                "\(source): is a private key ('\(label)'); give keyassign the server's public key, never a private one")
        }
        guard label == "PUBLIC KEY" || label == "RSA PUBLIC KEY" else {
            throw KeyAssignError(
                .config,
                "\(source): holds a '\(label)' block; expected a public key ('BEGIN PUBLIC KEY' or 'BEGIN RSA PUBLIC KEY')"
            )
        }
        let pkey = try decodePublicKey(pem, source: source)
        guard EVP_PKEY_is_a(pkey, "RSA") == 1 else {
            let type = EVP_PKEY_get0_type_name(pkey).map { String(cString: $0) } ?? "unknown"
            EVP_PKEY_free(pkey)
            throw KeyAssignError(.config, "\(source): \(type) key; replies are signed with RSA keys")
        }
        let bits = Int(EVP_PKEY_get_bits(pkey))
        guard acceptedBits.contains(bits) else {
            EVP_PKEY_free(pkey)
            throw KeyAssignError(
                .config,
                "\(source): RSA key of \(bits) bits; keyassign accepts \(acceptedBits.lowerBound) to \(acceptedBits.upperBound)"
            )
        }
        let fingerprint: String
        do {
            fingerprint = try Self.fingerprint(pkey, source: source)
        } catch {
            EVP_PKEY_free(pkey)
            throw error
        }
        return Key(
            identity: SigningKey(name: input.name, file: input.file, sha256: fingerprint), source: source,
            pkey: pkey, signatureLength: Int(EVP_PKEY_get_size(pkey)))
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo: the same for a key whatever PEM flavour its
    /// file uses, and what `openssl pkey -pubin -outform DER | sha256sum` prints.
    private static func fingerprint(_ pkey: OpaquePointer, source: String) throws -> String {
        let length = i2d_PUBKEY(pkey, nil)
        guard length > 0 else {
            throw KeyAssignError(.config, "\(source): OpenSSL cannot encode the key as DER (\(OpenSSLErrors.drain()))")
        }
        var der = [UInt8](repeating: 0, count: Int(length))
        let written = der.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor = buffer.baseAddress
            return i2d_PUBKEY(pkey, &cursor)
        }
        guard written == length else {
            throw KeyAssignError(.config, "\(source): OpenSSL cannot encode the key as DER (\(OpenSSLErrors.drain()))")
        }
        let digest = try SHA256Digest()
        der.withUnsafeBytes { digest.update($0) }
        return digest.finalHex()
    }

    /// OSSL_DECODER reads both SubjectPublicKeyInfo and PKCS#1 `RSA PUBLIC KEY` PEM.
    private static func decodePublicKey(_ pem: [UInt8], source: String) throws -> OpaquePointer {
        var pkey: OpaquePointer?
        guard
            let decoder = OSSL_DECODER_CTX_new_for_pkey(
                &pkey, "PEM", nil, nil, keyassign_EVP_PKEY_PUBLIC_KEY(), nil, nil)
        else {
            throw KeyAssignError(.config, "\(source): OpenSSL cannot set up a PEM decoder: \(OpenSSLErrors.drain())")
        }
        defer { OSSL_DECODER_CTX_free(decoder) }
        let decoded = try OpenSSLBIO.withReadBIO(pem) { OSSL_DECODER_from_bio(decoder, $0) }
        guard decoded == 1, let pkey else {
            throw KeyAssignError(
                .config, "\(source): the PEM block does not hold a readable public key (\(OpenSSLErrors.drain()))")
        }
        _ = OpenSSLErrors.drain()
        return pkey
    }
}
