import COpenSSL
import Foundation
import KeyAssign

/// Signs replies the way the Key Manager server does (RSASSA-PKCS1-v1_5 with SHA-256), for the
/// local sandbox server and for tests that need validly signed envelopes.
///
/// Thread-safe: the key is only read after init and each signature uses its own EVP_MD_CTX.
public final class ReplySigner: @unchecked Sendable {
    private let key: OpaquePointer
    private let sha256: OpaquePointer
    /// The public half as PEM SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`).
    public let publicKeyPEM: String

    private init(key: OpaquePointer) throws {
        guard let sha256 = EVP_MD_fetch(nil, "SHA256", nil) else {
            EVP_PKEY_free(key)
            throw KeyAssignError(.config, "OpenSSL has no SHA-256: \(OpenSSLErrors.drain())")
        }
        self.key = key
        self.sha256 = sha256
        do {
            let pem = try OpenSSLBIO.collect("the public key") { PEM_write_bio_PUBKEY($0, key) }
            publicKeyPEM = String(decoding: pem, as: UTF8.self)
        } catch {
            EVP_MD_free(sha256)
            EVP_PKEY_free(key)
            throw error
        }
    }

    deinit {
        EVP_MD_free(sha256)
        EVP_PKEY_free(key)
    }

    /// Loads the RSA private key at `privateKeyPath`, or generates one of `bits` bits and saves
    /// it there (mode 0600) when the file does not exist. Either way the public key is
    /// (re)written as PEM at `publicKeyPath`, so it always matches the private key in use.
    public static func loadOrCreate(privateKeyPath: String, publicKeyPath: String, bits: Int = 2048) throws
        -> ReplySigner
    {
        let signer: ReplySigner
        if FileManager.default.fileExists(atPath: privateKeyPath) {
            signer = try load(privateKeyPath)
        } else {
            let generated = try generate(bits: bits)
            let pem = try OpenSSLBIO.collect("the private key") {
                PEM_write_bio_PrivateKey($0, generated.key, nil, nil, 0, nil, nil)
            }
            switch try KeyFileWriter.createExclusively(privateKeyPath, pem, mode: 0o600) {
            case .created: signer = generated
            // Another process created it first: use theirs so both sign with the same key.
            case .alreadyExisted: signer = try load(privateKeyPath)
            }
        }
        try KeyFileWriter.replace(publicKeyPath, Array(signer.publicKeyPEM.utf8), mode: 0o644)
        return signer
    }

    /// A signer with a fresh key that lives only in memory (tests, throwaway sandboxes).
    public static func generate(bits: Int = 2048) throws -> ReplySigner {
        guard (1024...16384).contains(bits) else {
            throw KeyAssignError(.config, "RSA key size \(bits) is out of range (1024 to 16384 bits)")
        }
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, "RSA", nil) else {
            throw KeyAssignError(.config, "OpenSSL cannot create RSA keys: \(OpenSSLErrors.drain())")
        }
        defer { EVP_PKEY_CTX_free(ctx) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(ctx) == 1,
            keyassign_EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, Int32(bits)) == 1,
            EVP_PKEY_generate(ctx, &key) == 1, let key
        else {
            throw KeyAssignError(.config, "RSA key generation failed: \(OpenSSLErrors.drain())")
        }
        return try ReplySigner(key: key)
    }

    /// A signer over a PEM private key held in memory.
    public static func fromPEM(_ pem: String, source: String = "private key") throws -> ReplySigner {
        let key = try OpenSSLBIO.withReadBIO(Array(pem.utf8)) { bio -> OpaquePointer in
            // Without a callback OpenSSL would prompt on the terminal for an encrypted key's
            // passphrase, hanging a cron job; refusing to decrypt makes it a clear error.
            guard let key = PEM_read_bio_PrivateKey(bio, nil, { _, _, _, _ in 0 }, nil) else {
                throw KeyAssignError(
                    .config, "\(source): not an unencrypted PEM private key (\(OpenSSLErrors.drain()))")
            }
            return key
        }
        guard EVP_PKEY_is_a(key, "RSA") == 1 else {
            EVP_PKEY_free(key)
            throw KeyAssignError(.config, "\(source): not an RSA key; replies are signed with RSA")
        }
        return try ReplySigner(key: key)
    }

    private static func load(_ path: String) throws -> ReplySigner {
        let pem: String
        do {
            pem = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw KeyAssignError(.config, "private key \(path): cannot read it (\(error.localizedDescription))")
        }
        return try fromPEM(pem, source: "private key \(path)")
    }

    /// RSASSA-PKCS1-v1_5 signature over SHA-256 of `message`.
    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        guard let ctx = EVP_MD_CTX_new() else {
            throw KeyAssignError(.ioError, "OpenSSL could not allocate a digest context: \(OpenSSLErrors.drain())")
        }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestSignInit(ctx, nil, sha256, nil, key) == 1 else {
            throw KeyAssignError(.ioError, "signing failed: \(OpenSSLErrors.drain())")
        }
        var length = 0
        guard EVP_DigestSign(ctx, nil, &length, nil, 0) == 1 else {
            throw KeyAssignError(.ioError, "signing failed: \(OpenSSLErrors.drain())")
        }
        var signature = [UInt8](repeating: 0, count: length)
        let ok = message.withUnsafeBufferPointer { input in
            signature.withUnsafeMutableBufferPointer { output in
                EVP_DigestSign(ctx, output.baseAddress, &length, input.baseAddress, input.count)
            }
        }
        guard ok == 1 else { throw KeyAssignError(.ioError, "signing failed: \(OpenSSLErrors.drain())") }
        return Array(signature.prefix(length))
    }

    /// Signs the ASCII text the server signs (the `response_base64` value) and returns the
    /// signature as standard base64, ready for the envelope's `signature` field.
    public func signBase64(_ ascii: String) throws -> String {
        Data(try sign(Array(ascii.utf8))).base64EncodedString()
    }
}
