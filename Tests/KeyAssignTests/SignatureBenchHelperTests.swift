import COpenSSL
import Foundation
import Testing
@testable import KeyAssign

/// Not a test: the measuring half of `scripts/bench-verify.sh`, which runs it in a release
/// build with KEYASSIGN_BENCH_VERIFY set. Skipped in ordinary test runs; it asserts nothing
/// about speed.
@Suite struct SignatureBenchHelperTests {
    static let enabled = ProcessInfo.processInfo.environment["KEYASSIGN_BENCH_VERIFY"] != nil

    private func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = Timestamps.monotonic()
        try body()
        return Timestamps.monotonic() - start
    }

    /// The floor: only the RSA check, the way OpenSSL's own benchmark does it, with one
    /// EVP_MD_CTX initialised per verification like the verifier does (so the difference
    /// to the verifier is JSON, base64 and payload checks).
    private func rawVerifyMicros(_ ring: KeyRing, _ message: [UInt8], _ signature: [UInt8], iterations: Int) -> Double {
        guard let key = ring.keys(named: "global").first else { return .nan }
        var ok = 0
        let elapsed = seconds {
            for _ in 0..<iterations {
                guard let ctx = EVP_MD_CTX_new() else { continue }
                if EVP_DigestVerifyInit(ctx, nil, ring.sha256, nil, key.pkey) == 1,
                   EVP_DigestVerify(ctx, signature, signature.count, message, message.count) == 1 { ok += 1 }
                EVP_MD_CTX_free(ctx)
            }
        }
        precondition(ok == iterations, "raw verification failed")
        return elapsed / Double(iterations) * 1e6
    }

    @Test(.enabled(if: enabled)) func measure() throws {
        let iterations = Int(ProcessInfo.processInfo.environment["KEYASSIGN_BENCH_VERIFY"] ?? "") ?? 20000
        let dir = try TemporaryDirectory()
        var rows: [String] = []
        for bits in [2048, 4096] {
            let signer = try ReplySigner.generate(bits: bits)
            let keyPath = dir.path + "/k\(bits).pem"
            try signer.publicKeyPEM.write(toFile: keyPath, atomically: false, encoding: .utf8)
            var builder = EnvelopeBuilder()
            builder.signer = signer
            let envelope = try builder.bytes()
            let message = Array(builder.signedText.utf8)
            let signature = try signer.sign(message)

            let loads = 200
            let loadSeconds = try seconds { for _ in 0..<loads { _ = try KeyRing(specs: [keyPath]) } }

            let ring = try KeyRing(specs: [keyPath])
            let verifier = ReplyVerifier(keyRing: ring)
            guard case .trusted = verifier.verify(envelope, maxAge: nil, now: 0) else {
                Issue.record("benchmark envelope not trusted"); return
            }
            let raw = rawVerifyMicros(ring, message, signature, iterations: iterations)
            var trusted = 0
            let single = seconds {
                for _ in 0..<iterations {
                    if case .trusted = verifier.verify(envelope, maxAge: nil, now: 0) { trusted += 1 }
                }
            }
            precondition(trusted == iterations)
            let threads = ProcessInfo.processInfo.activeProcessorCount
            let parallel = seconds {
                DispatchQueue.concurrentPerform(iterations: threads) { _ in
                    for _ in 0..<iterations / threads { _ = verifier.verify(envelope, maxAge: nil, now: 0) }
                }
            }
            let rawParallel = seconds {
                DispatchQueue.concurrentPerform(iterations: threads) { _ in
                    _ = rawVerifyMicros(ring, message, signature, iterations: iterations / threads)
                }
            }
            let perThreadTotal = Double(threads * (iterations / threads))
            rows.append(String(format: "RSA%-5d %16.0f %20.1f %20.1f %18.0f %22.0f %24.0f",
                               bits, loadSeconds / Double(loads) * 1e6, single / Double(iterations) * 1e6, raw,
                               Double(iterations) / single, perThreadTotal / parallel, perThreadTotal / rawParallel))
        }
        #if DEBUG
        let build = "debug build (numbers meaningless)"
        #else
        let build = "release build"
        #endif
        print("in-process, \(build), \(iterations) verifications per row, \(ProcessInfo.processInfo.activeProcessorCount) cores")
        let headers = [("key", -8), ("key load (us)", 16), ("verify reply (us)", 20), ("raw RSA only (us)", 20),
                       ("replies/s 1 thread", 18), ("replies/s all cores", 22),
                       ("raw RSA/s all cores", 24)]
        print(headers.map { title, width in
            let fill = String(repeating: " ", count: max(0, abs(width) - title.count))
            return width < 0 ? title + fill : fill + title
        }.joined(separator: " "))
        rows.forEach { print($0) }
    }
}
