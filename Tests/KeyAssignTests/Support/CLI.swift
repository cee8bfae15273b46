import Foundation

/// Runs the real `keyassign` executable that `swift build` put beside the test bundle.
enum CLI {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The package's root directory (this file is Tests/KeyAssignTests/Support/CLI.swift).
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    /// The sample exports in samples/.
    static let samples = packageRoot + "/samples"

    static var executableURL: URL {
        // On Linux the test runner lives in the products directory (.build/debug), next to
        // the `keyassign` binary that the test target depends on.
        let products = Bundle.main.bundleURL
        let candidate = products.appendingPathComponent("keyassign")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            return bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("keyassign")
        }
        return candidate
    }

    /// Starts `keyassign arguments…` without waiting for it, for a test that signals, kills or
    /// watches a running process. `environment` is added to a minimal copy of this process's
    /// environment (without any KEYASSIGN_ variable, so that tests do not leak into each other).
    static func start(
        _ arguments: [String], environment: [String: String] = [:], currentDirectory: String? = nil,
        standardOutput: Any = FileHandle.nullDevice,
        standardError: Any = FileHandle.nullDevice
    ) throws -> Process {
        let process = Process()
        process.executableURL = executableURL
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("KEYASSIGN_") }
        env.merge(environment) { _, new in new }
        process.environment = env
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        process.standardOutput = standardOutput
        process.standardError = standardError
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Runs `keyassign arguments…` to completion, in the environment `start` gives it.
    @discardableResult
    static func run(
        _ arguments: [String], environment: [String: String] = [:],
        currentDirectory: String? = nil, timeout: TimeInterval = 120
    ) throws -> Result {
        let out = Pipe()
        let err = Pipe()
        let process = try start(
            arguments, environment: environment, currentDirectory: currentDirectory,
            standardOutput: out, standardError: err)
        // Drain both pipes while the child runs, so that a chatty child never blocks.
        let group = DispatchGroup()
        nonisolated(unsafe) var outData = Data()
        nonisolated(unsafe) var errData = Data()
        DispatchQueue.global().async(group: group) { outData = out.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
        // A bound that keeps a hung child from hanging the test run, not a claim about speed:
        // a child killed here fails its test saying so.
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        let killed = process.isRunning
        if killed {
            process.terminate()
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        group.wait()
        return Result(
            status: process.terminationStatus,
            stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self)
                + (killed ? "\n[test: keyassign was still running after \(Int(timeout)) s and was killed]\n" : ""))
    }

    /// Path of a file under the test bundle's Fixtures folder.
    static func fixture(_ name: String) -> String {
        Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil)!.path
    }
}
