import Foundation
import Synchronization

/// A program a test needs (strace, promtool, openssl, python3): found, or installed with
/// apt-get as `.ci/run` and the scripts install what they need, or the test fails saying what
/// to install. A test that needs a tool never passes without it.
enum RequiredTool {
    struct Missing: Error, CustomStringConvertible {
        var tool: String
        var package: String
        var description: String {
            "\(tool) is missing and could not be installed (apt-get install \(package)): this test needs it"
        }
    }

    /// One install attempt per package per process, whatever the number of tests asking.
    private static let attempted = Mutex<Set<String>>([])

    /// The path of `tool`, installing Debian's `package` when it is missing.
    static func path(_ tool: String, package: String) throws -> String {
        if let found = find(tool) { return found }
        let first = attempted.withLock { $0.insert(package).inserted }
        if first && getuid() == 0 {
            let install = Process()
            install.executableURL = URL(fileURLWithPath: "/bin/sh")
            install.arguments = [
                "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \(package)",
            ]
            install.standardOutput = FileHandle.nullDevice
            install.standardError = FileHandle.nullDevice
            try? install.run()
            install.waitUntilExit()
        }
        guard let found = find(tool) else { throw Missing(tool: tool, package: package) }
        return found
    }

    private static func find(_ tool: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/local/bin", "/usr/bin", "/bin"]
        return directories.map { $0 + "/" + tool }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
