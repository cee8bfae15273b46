import Foundation
import Testing

@testable import KeyAssign

/// `CLI.run` on a Dispatch thread, awaited.
func offCooperativePool(_ arguments: [String], environment: [String: String] = [:]) async throws -> CLI.Result {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try CLI.run(arguments, environment: environment) })
        }
    }
}

/// A work database filled by the real `keyassign import`, and the real `keyassign sandbox`
/// command as a child process with the faults under test: servers that behave oddly, and
/// servers that go away.
final class HardeningBench {
    let dir: TemporaryDirectory
    let db: String
    let keys: [String]
    let sandbox: SandboxProcess

    /// `owners[i]` is row i's owner name (default "Jane Doe i"); `unknown` more rows carry keys
    /// the sandbox does not know.
    init(rows count: Int, owners: [Int: String] = [:], sandbox arguments: [String]) throws {
        dir = try TemporaryDirectory()
        db = dir.path + "/work.sqlite"
        keys = (0..<count).map { _ in UUID().uuidString.lowercased() }
        try (keys.joined(separator: "\n") + "\n").write(
            toFile: dir.path + "/keys.txt", atomically: true, encoding: .utf8)
        var csv = "license_key,owner_name,email\n"
        for (i, key) in keys.enumerated() {
            let owner = (owners[i] ?? "Jane Doe \(i)").replacingOccurrences(of: "\"", with: "\"\"")
            csv += "\(key),\"\(owner)\",jane\(i)@example.com\n"
        }
        try csv.write(toFile: dir.path + "/sales.csv", atomically: true, encoding: .utf8)
        let imported = try CLI.run(["import", "--db", db, dir.path + "/sales.csv"])
        guard imported.status == 0 else { throw KeyAssignError(.ioError, "import failed: \(imported.stderr)") }
        sandbox = try SandboxProcess(
            stateDirectory: dir.path + "/sandbox",
            arguments: ["--keys", dir.path + "/keys.txt"] + arguments)
    }

    func runArguments(_ extra: [String]) -> [String] {
        [
            "run", "--server", sandbox.baseURL, "--public-key", sandbox.publicKeyPath, "--db", db,
            "--rate", "0", "--concurrency", "8", "--backoff-base", "0.02", "--backoff-cap", "0.2", "--timeout", "5",
        ] + extra
    }

    /// Runs `keyassign run` on a Dispatch thread: these runs take seconds, and a test blocking
    /// one of the few cooperative threads for that long starves the async tests beside it.
    func run(_ extra: [String] = []) async throws -> CLI.Result {
        try await offCooperativePool(runArguments(extra), environment: ["KEYASSIGN_API_KEY": sandbox.apiKey])
    }

    func open() throws -> Database { try Database(path: db) }

    func count(_ sql: String) throws -> Int {
        Int(try open().scalarInt(sql) ?? -1)
    }

    func stateCounts() throws -> [String: Int] {
        let statement = try open().prepare("SELECT state, count(*) FROM work GROUP BY state")
        var counts: [String: Int] = [:]
        while try statement.step() { counts[statement.string(0) ?? ""] = Int(statement.int(1)) }
        return counts
    }

    func text(_ sql: String) throws -> String? {
        let statement = try open().prepare(sql)
        return try statement.step() ? statement.string(0) : nil
    }

    func summary(_ path: String) throws -> RunSummary {
        try JSONDecoder().decode(RunSummary.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}
