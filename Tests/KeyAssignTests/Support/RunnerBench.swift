import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// A work database filled by the real `keyassign import`, and an in-process sandbox license
/// server on a loopback port, for driving the real `keyassign run`.
final class RunnerBench {
    let dir: TemporaryDirectory
    let db: String
    var server: SandboxServer
    let stateDirectory: String
    let inventory: [String]
    var configuration: SandboxConfiguration

    /// `inventory` keys are known to the sandbox; `extra` keys are queued but unknown to it.
    init(
        inventory count: Int, unknown: Int = 0, faults: SandboxConfiguration.Faults = .init(),
        rateLimit: SandboxConfiguration.RateLimit? = nil, apiKey: String? = nil
    ) throws {
        dir = try TemporaryDirectory()
        db = dir.path + "/work.sqlite"
        stateDirectory = dir.path + "/sandbox"
        inventory = (0..<count).map { _ in UUID().uuidString.lowercased() }
        var configuration = SandboxConfiguration(stateDirectory: stateDirectory, inventory: .keys(inventory))
        configuration.faults = faults
        configuration.rateLimit = rateLimit
        configuration.threads = 1
        if let apiKey {
            let file = dir.path + "/sandbox-api-key"
            try apiKey.write(toFile: file, atomically: true, encoding: .utf8)
            configuration.apiKeyFile = file
        }
        self.configuration = configuration
        server = try SandboxServer.start(configuration)
        let unknownKeys = (0..<unknown).map { _ in UUID().uuidString.lowercased() }
        try importRows(inventory + unknownKeys)
    }

    deinit {
        server.shutdown()
    }

    var allKeys: [String] { (try? states().keys.sorted()) ?? [] }

    /// Queues `keys` through the real CLI importer.
    func importRows(_ keys: [String], file: String = "sales.csv") throws {
        var csv = "license_key,owner_name,email\n"
        for (i, key) in keys.enumerated() {
            csv += "\(key),\"Doe, Jane \(i)\",jane\(i)+tag@example.com\n"
        }
        let path = dir.path + "/" + file
        try csv.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try CLI.run(["import", "--db", db, path])
        #expect(result.status == 0, "import failed: \(result.stderr)")
    }

    /// Restarts the sandbox on the same state directory (it remembers its assignments).
    func restart(
        faults: SandboxConfiguration.Faults = .init(), listing: SandboxConfiguration.ListingMode = .signed,
        inventory: [String]? = nil
    ) throws {
        server.shutdown()
        configuration.faults = faults
        configuration.listing = listing
        if let inventory { configuration.inventory = .keys(inventory) }
        server = try SandboxServer.start(configuration)
    }

    /// `keyassign reconcile` against the sandbox, through the real CLI.
    @discardableResult
    func reconcile(_ extra: [String] = []) throws -> CLI.Result {
        try CLI.run(
            ["reconcile", "--server", server.baseURL, "--public-key", server.publicKeyPath, "--db", db] + extra,
            environment: ["KEYASSIGN_API_KEY": server.apiKey])
    }

    func runArguments(_ extra: [String]) -> [String] {
        [
            "run", "--server", server.baseURL, "--public-key", server.publicKeyPath, "--db", db,
            "--rate", "0", "--concurrency", "8", "--backoff-base", "0.02", "--backoff-cap", "0.2", "--timeout", "5",
        ] + extra
    }

    /// `run` started in the background, for a test that signals it.
    func startRun(_ extra: [String] = []) throws -> Process {
        try CLI.start(runArguments(extra), environment: ["KEYASSIGN_API_KEY": server.apiKey])
    }

    @discardableResult
    func run(_ extra: [String] = [], apiKey: String? = nil) throws -> CLI.Result {
        try CLI.run(runArguments(extra), environment: ["KEYASSIGN_API_KEY": apiKey ?? server.apiKey])
    }

    func open() throws -> Database { try Database(path: db) }

    /// license_key → state.
    func states() throws -> [String: String] {
        let database = try open()
        let statement = try database.prepare("SELECT license_key, state FROM work")
        var result: [String: String] = [:]
        while try statement.step() { result[statement.string(0) ?? ""] = statement.string(1) ?? "" }
        return result
    }

    func count(_ sql: String) throws -> Int {
        Int(try open().scalarInt(sql) ?? -1)
    }

    func stateCounts() throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for (_, state) in try states() { counts[state, default: 0] += 1 }
        return counts
    }
}
