import COpenSSL
import KeyAssign

/// The floor: only the RSA check, the way OpenSSL's own benchmark does it, with one EVP_MD_CTX
/// initialised per verification like the verifier does (so the difference to the verifier is
/// JSON, base64 and payload checks).
final class RawVerifier: @unchecked Sendable {
    private let key: OpaquePointer
    private let sha256: OpaquePointer

    init(publicKeyPEM: String) throws {
        let bytes = Array(publicKeyPEM.utf8)
        let bio = bytes.withUnsafeBytes { BIO_new_mem_buf($0.baseAddress, Int32($0.count)) }
        defer { BIO_free(bio) }
        guard let key = PEM_read_bio_PUBKEY(bio, nil, nil, nil), let sha256 = EVP_MD_fetch(nil, "SHA256", nil) else {
            throw KeyAssignError(.config, "OpenSSL cannot read the benchmark's public key")
        }
        self.key = key
        self.sha256 = sha256
    }

    deinit {
        EVP_MD_free(sha256)
        EVP_PKEY_free(key)
    }

    func verify(_ message: [UInt8], _ signature: [UInt8], iterations: Int) {
        var ok = 0
        for _ in 0..<iterations {
            guard let ctx = EVP_MD_CTX_new() else { continue }
            if EVP_DigestVerifyInit(ctx, nil, sha256, nil, key) == 1,
                EVP_DigestVerify(ctx, signature, signature.count, message, message.count) == 1
            {
                ok += 1
            }
            EVP_MD_CTX_free(ctx)
        }
        precondition(ok == iterations, "raw verification failed")
    }
}
