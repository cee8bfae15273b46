import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The real `keyassign sandbox` command in a child process: its own flags, its own state
/// directory, stopped with SIGTERM (as an operator would) and started again on the same port
/// and state, as a license server restart looks from a client.
final class SandboxProcess {
    let stateDirectory: String
    private(set) var port: Int
    private let arguments: [String]
    private var process: Process?

    /// `arguments` are the sandbox's flags after `--state-dir DIR --port PORT`.
    init(stateDirectory: String, arguments: [String], port: Int = 0) throws {
        self.stateDirectory = stateDirectory
        self.arguments = arguments
        self.port = port
        try start()
    }

    deinit { stop() }

    var baseURL: String { "http://127.0.0.1:\(port)" }
    var publicKeyPath: String { stateDirectory + "/public.pem" }
    var apiKey: String {
        ((try? String(contentsOfFile: stateDirectory + "/api-key", encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Starts it (again) on `port` (0 the first time: a free one), and waits until it listens.
    func start() throws {
        let portFile = stateDirectory + "/port"
        unlink(portFile)
        let child = Process()
        child.executableURL = CLI.executableURL
        child.arguments = ["sandbox", "--state-dir", stateDirectory, "--port", String(port)] + arguments
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        try child.run()
        process = child
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && child.isRunning {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8),
                let bound = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                port = bound
                return
            }
            usleep(20_000)
        }
        stop()
        throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: portFile])
    }

    /// SIGTERM, as an operator stops it; SIGKILL if it has not stopped within 10 s. (A child of
    /// the test process may inherit SIGTERM blocked; the sandbox handles it with a dispatch source.)
    func stop() {
        guard let child = process else { return }
        process = nil
        if child.isRunning {
            kill(child.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(10)
            while child.isRunning && Date() < deadline { usleep(20_000) }
            if child.isRunning { kill(child.processIdentifier, SIGKILL) }
        }
        child.waitUntilExit()
    }

    /// Keys the sandbox has assigned (its `assignments.jsonl`), with how often each appears.
    func assignments() -> [String: Int] {
        let text = (try? String(contentsOfFile: stateDirectory + "/assignments.jsonl", encoding: .utf8)) ?? ""
        var counts: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let key = object["license_key"] as? String
            else { continue }
            counts[key, default: 0] += 1
        }
        return counts
    }
}
