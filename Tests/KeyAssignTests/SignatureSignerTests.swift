import Foundation
import Synchronization
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

@Suite struct SignatureSignerTests {
    private func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test func createsAPrivateKeyOnlyTheOwnerCanReadAndSignaturesOpenSSLAccepts() throws {
        let dir = try TemporaryDirectory()
        let privatePath = dir.path + "/sandbox-private.pem"
        let publicPath = dir.path + "/sandbox-public.pem"
        let signer = try ReplySigner.loadOrCreate(privateKeyPath: privatePath, publicKeyPath: publicPath)
        #expect(try mode(privatePath) == 0o600)
        #expect(try String(contentsOfFile: privatePath, encoding: .utf8).contains("BEGIN PRIVATE KEY"))
        #expect(try String(contentsOfFile: publicPath, encoding: .utf8) == signer.publicKeyPEM)
        #expect(signer.publicKeyPEM.hasPrefix("-----BEGIN PUBLIC KEY-----"))
        // Nothing else may be left beside the keys (temporary files are cleaned up).
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
                == ["sandbox-private.pem", "sandbox-public.pem"])

        let message = "eyJjb2RlIjo4MDAsIm1lc3NhZ2UiOiJMaWNlbnNlIGtleSBhc3NpZ25lZCIsInRpbWVzdGFtcCI6MTcwODk5OTkzM30="
        let signature = try #require(Data(base64Encoded: try signer.signBase64(message)))
        #expect(signature.count == 256)
        try Data(message.utf8).write(to: URL(fileURLWithPath: dir.path + "/msg"))
        try signature.write(to: URL(fileURLWithPath: dir.path + "/sig"))
        let good = try OpenSSLCLI.run([
            "dgst", "-sha256", "-verify", publicPath, "-signature", dir.path + "/sig", dir.path + "/msg",
        ])
        #expect(good.status == 0 && good.output.contains("Verified OK"), "\(good.output)")

        // The same signature over other bytes must not verify, or the check above proves nothing.
        try Data((message + "x").utf8).write(to: URL(fileURLWithPath: dir.path + "/msg"))
        let bad = try OpenSSLCLI.run([
            "dgst", "-sha256", "-verify", publicPath, "-signature", dir.path + "/sig", dir.path + "/msg",
        ])
        #expect(bad.status != 0)
    }

    @Test func reloadsTheSameKeyAndRewritesThePublicKey() throws {
        let dir = try TemporaryDirectory()
        let privatePath = dir.path + "/k.pem"
        let publicPath = dir.path + "/pub.pem"
        let first = try ReplySigner.loadOrCreate(privateKeyPath: privatePath, publicKeyPath: publicPath)
        try "stale".write(toFile: publicPath, atomically: false, encoding: .utf8)
        let second = try ReplySigner.loadOrCreate(privateKeyPath: privatePath, publicKeyPath: publicPath)
        #expect(first.publicKeyPEM == second.publicKeyPEM)
        #expect(try String(contentsOfFile: publicPath, encoding: .utf8) == first.publicKeyPEM)
        // PKCS#1 v1.5 is deterministic: the same key signs the same bytes identically.
        #expect(try first.sign(Array("abc".utf8)) == second.sign(Array("abc".utf8)))
    }

    @Test func signsFromManyThreadsAtOnce() throws {
        // The sandbox signs on every event loop thread with one shared signer.
        let signer = TestKeys.global
        let verifier = ReplyVerifier(keyRing: try TestKeys.ring())
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for index in 0..<25 {
                var builder = EnvelopeBuilder()
                builder.payload = #"{"code":800,"message":"t\#(thread)-\#(index)","timestamp":1708999933}"#
                let ok: Bool
                do {
                    builder.signature = try signer.signBase64(builder.signedText)
                    if case .trusted(let payload) = verifier.verify(try builder.bytes()) {
                        ok = payload.message == "t\(thread)-\(index)"
                    } else {
                        ok = false
                    }
                } catch {
                    ok = false
                }
                if !ok { failures.withLock { $0 += 1 } }
            }
        }
        #expect(failures.withLock { $0 } == 0)
    }

    @Test func refusesAFileThatIsNotAPrivateKey() throws {
        let dir = try TemporaryDirectory()
        let privatePath = dir.path + "/k.pem"
        try "not a key".write(toFile: privatePath, atomically: false, encoding: .utf8)
        let error = try #require(throws: KeyAssignError.self) {
            try ReplySigner.loadOrCreate(privateKeyPath: privatePath, publicKeyPath: dir.path + "/pub.pem")
        }
        #expect(error.message.contains(privatePath))
    }

    @Test func refusesAnEncryptedPrivateKeyInsteadOfPromptingForAPassphrase() throws {
        let dir = try TemporaryDirectory()
        let privatePath = dir.path + "/enc.pem"
        let made = try OpenSSLCLI.run([
            "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-aes-128-cbc", "-pass", "pass:secret", "-out", privatePath,
        ])
        #expect(made.status == 0, "\(made.output)")
        let error = try #require(throws: KeyAssignError.self) {
            try ReplySigner.loadOrCreate(privateKeyPath: privatePath, publicKeyPath: dir.path + "/pub.pem")
        }
        #expect(error.message.contains("not an unencrypted PEM private key"))
    }
}
