// Shared by every harness (scripts/fuzz compiles it into each).

@testable import KeyAssign

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Ends the process on a broken property; libFuzzer records that as a crash with its input.
func fail(_ message: String) -> Never {
    // fd 2 directly: Swift 6 refuses the global `stderr` as shared mutable state.
    let line = Array(
        "\(CommandLine.arguments.first.map { String($0.split(separator: "/").last ?? "") } ?? "fuzz"): \(message)\n"
            .utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    abort()
}

/// The fixtures hold the public key and the genuine replies the seed corpora come from: found
/// from where this file was when it was built (Fuzz/ → Tests/KeyAssignTests/Fixtures, for
/// running by hand), or KEYASSIGN_FUZZ_FIXTURES.
let fixtures: String = {
    if let dir = getenv("KEYASSIGN_FUZZ_FIXTURES") { return String(cString: dir) }
    let source = "\(#filePath)"
    let repo = source.split(separator: "/", omittingEmptySubsequences: false).dropLast(2).joined(separator: "/")
    return repo + "/Tests/KeyAssignTests/Fixtures"
}()

func readFixture(_ name: String) -> [UInt8] {
    switch SmallFile.contents(of: fixtures + "/" + name, limit: 1 << 20) {
    case .success(let bytes): return bytes
    case .failure(let failure): fail("fixture \(fixtures)/\(name): \(failure.description)")
    }
}

/// The vendor's demo key (`global`), which signed the fixtures.
let publicKeyPEM = readFixture("docs-demo-global-public.pem")

let demoKeyRing: KeyRing = {
    do { return try KeyRing(pems: ["global": String(decoding: publicKeyPEM, as: UTF8.self)]) } catch {
        fail("cannot load the public key: \(error)")
    }
}()
