import Foundation

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Keys generated once per test process: RSA generation is the slow part of these tests.
enum TestKeys {
    static let global: ReplySigner = generate(2048)
    static let other2048: ReplySigner = generate(2048)
    static let big4096: ReplySigner = generate(4096)
    static let small1024: ReplySigner = generate(1024)

    private static func generate(_ bits: Int) -> ReplySigner {
        do { return try ReplySigner.generate(bits: bits) } catch {
            preconditionFailure("test key generation failed: \(error)")
        }
    }

    /// A ring holding `global` (and optionally more) as the verifier under test sees it.
    static func ring(_ pems: [String: String] = ["global": global.publicKeyPEM]) throws -> KeyRing {
        try KeyRing(pems: pems)
    }
}
