import COpenSSL
import Dispatch
import Foundation
import KeyAssign
import KeyAssignSandbox

/// The measuring half of `scripts/bench-verify.sh`: loads a public key and verifies one signed
/// reply envelope many times, on one thread and on all cores, for 2048- and 4096-bit keys,
/// beside the bare RSA check done through the same OpenSSL calls in the same process.
/// `bench-verify [ITERATIONS]` (20000 by default) prints one row per key size.
@main
struct BenchVerify {
    static func main() throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard arguments.count <= 1, let iterations = arguments.first.map({ Int($0) }) ?? 20000, iterations > 0 else {
            FileHandle.standardError.write(Data("usage: bench-verify [ITERATIONS]\n".utf8))
            exit(64)
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "bench-verify-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        var rows: [String] = []
        for bits in [2048, 4096] {
            let signer = try ReplySigner.generate(bits: bits)
            let keyPath = directory + "/k\(bits).pem"
            try signer.publicKeyPEM.write(toFile: keyPath, atomically: false, encoding: .utf8)
            // The shape of a real reply (docs: assign-license-key.md), signed by `signer`.
            let payload = #"{"code":800,"message":"License key assigned","timestamp":1708999933}"#
            let signedText = Data(payload.utf8).base64EncodedString()
            let envelope = Array(
                #"{"response":\#(payload),"response_base64":"\#(signedText)","private_key_used":"global","signature":"\#(try signer.signBase64(signedText))"}"#
                    .utf8)
            let message = Array(signedText.utf8)
            let signature = try signer.sign(message)

            let loads = 200
            let loadSeconds = try seconds { for _ in 0..<loads { _ = try KeyRing(specs: [keyPath]) } }

            let verifier = ReplyVerifier(keyRing: try KeyRing(specs: [keyPath]))
            guard case .trusted = verifier.verify(envelope, maxAge: nil, now: 0) else {
                throw KeyAssignError(.someFailed, "the benchmark's envelope is not trusted")
            }
            let raw = try RawVerifier(publicKeyPEM: signer.publicKeyPEM)
            let rawMicros =
                seconds { raw.verify(message, signature, iterations: iterations) } / Double(iterations) * 1e6
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
                    raw.verify(message, signature, iterations: iterations / threads)
                }
            }
            let perThreadTotal = Double(threads * (iterations / threads))
            rows.append(
                String(
                    format: "RSA%-5d %16.0f %20.1f %20.1f %18.0f %22.0f %24.0f",
                    bits, loadSeconds / Double(loads) * 1e6, single / Double(iterations) * 1e6, rawMicros,
                    Double(iterations) / single, perThreadTotal / parallel, perThreadTotal / rawParallel))
        }
        #if DEBUG
            let build = "debug build (numbers meaningless)"
        #else
            let build = "release build"
        #endif
        print(
            "in-process, \(build), \(iterations) verifications per row, \(ProcessInfo.processInfo.activeProcessorCount) cores"
        )
        let headers = [
            ("key", -8), ("key load (us)", 16), ("verify reply (us)", 20), ("raw RSA only (us)", 20),
            ("replies/s 1 thread", 18), ("replies/s all cores", 22),
            ("raw RSA/s all cores", 24),
        ]
        print(
            headers.map { title, width in
                let fill = String(repeating: " ", count: max(0, abs(width) - title.count))
                return width < 0 ? title + fill : fill + title
            }.joined(separator: " "))
        for row in rows { print(row) }
    }

    private static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = Timestamps.monotonic()
        try body()
        return Timestamps.monotonic() - start
    }
}
