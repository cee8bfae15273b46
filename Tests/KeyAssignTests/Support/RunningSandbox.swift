import Foundation

@testable import KeyAssign
@testable import KeyAssignSandbox

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// A sandbox in a fresh temporary directory, stopped when the value dies.
final class RunningSandbox {
    let directory: TemporaryDirectory
    let server: SandboxServer
    let verifier: ReplyVerifier

    init(
        keys: [String] = [], directory: TemporaryDirectory? = nil,
        configure: (inout SandboxConfiguration) -> Void = { _ in }
    ) throws {
        let directory = try directory ?? TemporaryDirectory()
        var configuration = SandboxConfiguration(stateDirectory: directory.path + "/state", inventory: .keys(keys))
        configuration.threads = 2
        configure(&configuration)
        self.directory = directory
        server = try SandboxServer.start(configuration)
        verifier = ReplyVerifier(keyRing: try KeyRing(specs: ["global=" + server.publicKeyPath]))
    }

    deinit { server.shutdown() }

    var assignURL: URL { URL(string: server.baseURL + "/api/v1/assign-license-key")! }
}
