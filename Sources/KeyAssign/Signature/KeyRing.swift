import COpenSSL
import Foundation

/// The public keys replies may be signed with, by the name the server puts in
/// `private_key_used` (`global`, `product`, …). Each key is parsed and checked once, here,
/// so that a bad key file stops keyassign before any work instead of failing every reply.
///
/// Immutable after init; safe to share between threads (OpenSSL allows concurrent
/// verification with one EVP_PKEY as long as nobody modifies it).
public final class KeyRing: @unchecked Sendable {
    /// Key sizes keyassign accepts. Below 2048 bits a signature proves little; above 8192
    /// nobody issues keys, and a huge modulus would make every check slow.
    public static let acceptedBits = 2048...8192

    struct Key {
        let name: String
        let source: String
        let pkey: OpaquePointer
        /// The modulus size in bytes: an RSA signature is exactly this long.
        let signatureLength: Int
    }

    private let keys: [String: Key]
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
        var sources: [(name: String, source: String, pem: [UInt8])] = []
        for spec in specs {
            let (name, path) = Self.split(spec)
            guard !path.isEmpty else {
                throw KeyAssignError(.config, "public key spec '\(spec)': no file path after '\(name)='")
            }
            sources.append((name, "public key \(path)", try Self.readFile(path)))
        }
        try self.init(sources: sources)
    }

    /// Keys held in memory, by name (tests, the demo). The values are PEM text.
    public convenience init(pems: [String: String]) throws {
        try self.init(sources: pems.sorted { $0.key < $1.key }.map {
            ($0.key, "public key '\($0.key)' (in memory)", Array($0.value.utf8))
        })
    }

    private init(sources: [(name: String, source: String, pem: [UInt8])]) throws {
        guard let sha256 = EVP_MD_fetch(nil, "SHA256", nil) else {
            throw KeyAssignError(.config, "OpenSSL has no SHA-256: \(OpenSSLErrors.drain())")
        }
        var keys: [String: Key] = [:]
        func freeAll() {
            for key in keys.values { EVP_PKEY_free(key.pkey) }
            EVP_MD_free(sha256)
        }
        for (name, source, pem) in sources {
            if let earlier = keys[name] {
                freeAll()
                throw KeyAssignError(.config, "\(source): the name '\(name)' is already given to \(earlier.source); give each key its own NAME=")
            }
            do {
                keys[name] = try Self.parse(pem, name: name, source: source)
            } catch {
                freeAll()
                throw error
            }
        }
        self.keys = keys
        self.sha256 = sha256
    }

    deinit {
        for key in keys.values { EVP_PKEY_free(key.pkey) }
        EVP_MD_free(sha256)
    }

    func key(named name: String) -> Key? { keys[name] }

    static func split(_ spec: String) -> (name: String, path: String) {
        guard let equals = spec.firstIndex(of: "=") else { return ("global", spec) }
        let name = spec[..<equals]
        let plausible = !name.isEmpty && name.utf8.allSatisfy { byte in
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

    private static func parse(_ pem: [UInt8], name: String, source: String) throws -> Key {
        // Look at the PEM labels first: they let the error say what the file is, which is
        // more useful to someone who picked the wrong file than a decoder's complaint.
        let labels = pemLabels(String(decoding: pem, as: UTF8.self))
        guard let label = labels.first else {
            throw KeyAssignError(.config, "\(source): not a PEM file (no '-----BEGIN' line); expected a PEM public key ('BEGIN PUBLIC KEY')")
        }
        guard labels.count == 1 else {
            throw KeyAssignError(.config, "\(source): holds \(labels.count) PEM blocks (\(labels.joined(separator: ", "))); expected exactly one public key")
        }
        if label.contains("PRIVATE KEY") {
            throw KeyAssignError(.config, "\(source): is a private key ('\(label)'); give keyassign the server's public key, never a private one")
        }
        guard label == "PUBLIC KEY" || label == "RSA PUBLIC KEY" else {
            throw KeyAssignError(.config, "\(source): holds a '\(label)' block; expected a public key ('BEGIN PUBLIC KEY' or 'BEGIN RSA PUBLIC KEY')")
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
            throw KeyAssignError(.config, "\(source): RSA key of \(bits) bits; keyassign accepts \(acceptedBits.lowerBound) to \(acceptedBits.upperBound)")
        }
        return Key(name: name, source: source, pkey: pkey, signatureLength: Int(EVP_PKEY_get_size(pkey)))
    }

    /// OSSL_DECODER reads both SubjectPublicKeyInfo and PKCS#1 `RSA PUBLIC KEY` PEM.
    private static func decodePublicKey(_ pem: [UInt8], source: String) throws -> OpaquePointer {
        var pkey: OpaquePointer?
        guard let decoder = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", nil, nil, keyassign_EVP_PKEY_PUBLIC_KEY(), nil, nil) else {
            throw KeyAssignError(.config, "\(source): OpenSSL cannot set up a PEM decoder: \(OpenSSLErrors.drain())")
        }
        defer { OSSL_DECODER_CTX_free(decoder) }
        let decoded = try OpenSSLBIO.withReadBIO(pem) { OSSL_DECODER_from_bio(decoder, $0) }
        guard decoded == 1, let pkey else {
            throw KeyAssignError(.config, "\(source): the PEM block does not hold a readable public key (\(OpenSSLErrors.drain()))")
        }
        _ = OpenSSLErrors.drain()
        return pkey
    }
}
