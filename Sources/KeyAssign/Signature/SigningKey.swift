/// Which configured public key verified a reply. Several keys may share a name (a vendor
/// with two products gets replies that all say `"private_key_used": "product"`), so the
/// name alone does not say which key holds; the fingerprint does, and survives the file
/// being moved or renamed.
public struct SigningKey: Sendable, Equatable, CustomStringConvertible {
    /// The name replies give it (`private_key_used`).
    public let name: String
    /// The PEM file it was read from, as an absolute path; nil for a key held in memory.
    public let file: String?
    /// SHA-256 of the key's DER SubjectPublicKeyInfo, lowercase hex: what
    /// `openssl pkey -pubin -in FILE -outform DER | sha256sum` prints, for PKCS#1 and
    /// SubjectPublicKeyInfo PEM files alike.
    public let sha256: String

    public init(name: String, file: String?, sha256: String) {
        self.name = name
        self.file = file
        self.sha256 = sha256
    }

    public var fingerprint: String { "sha256:" + sha256 }

    /// `product sha256:… (/etc/keyassign/b.pem)`: how `audit` and `history` name it.
    public var description: String {
        "\(name) \(fingerprint)" + (file.map { " (\($0))" } ?? "")
    }
}
