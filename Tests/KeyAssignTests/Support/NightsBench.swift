import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// A sandbox with a large inventory and a work database that receives a few rows a night,
/// each night through the real `keyassign import` and `keyassign run` (which reconciles its
/// rejections against the key listing and keeps that listing as evidence).
final class NightsBench {
    let dir: TemporaryDirectory
    let db: String
    let server: SandboxServer
    let inventory: [String]
    private(set) var nextKey = 0

    init(inventory count: Int) throws {
        dir = try TemporaryDirectory()
        db = dir.path + "/work.sqlite"
        inventory = (0..<count).map { _ in UUID().uuidString.lowercased() }
        var configuration = SandboxConfiguration(stateDirectory: dir.path + "/sandbox", inventory: .keys(inventory))
        configuration.threads = 1
        server = try SandboxServer.start(configuration)
    }

    deinit {
        server.shutdown()
    }

    /// One night: `rows` new rows, `heldByOther` of them for keys another buyer already owns
    /// (an everyday 801, explained by the listing). Returns the run's result.
    @discardableResult
    func night(_ number: Int, rows: Int, heldByOther: Int) throws -> CLI.Result {
        let keys = Array(inventory[nextKey..<(nextKey + rows)])
        nextKey += rows
        for key in keys.prefix(heldByOther) {
            try server.preassign(key: key, ownerName: "Other Buyer", email: "other@example.net")
        }
        var csv = "license_key,owner_name,email\n"
        for (i, key) in keys.enumerated() {
            csv += "\(key),Night \(number) Buyer \(i),buyer\(number).\(i)@example.com\n"
        }
        let path = dir.path + "/night-\(number).csv"
        try csv.write(toFile: path, atomically: true, encoding: .utf8)
        let imported = try CLI.run(["import", "--db", db, path])
        #expect(imported.status == 0, "import: \(imported.stderr)")
        return try CLI.run(
            [
                "run", "--server", server.baseURL, "--public-key", server.publicKeyPath, "--db", db,
                "--rate", "0", "--concurrency", "4", "--timeout", "5",
            ],
            environment: ["KEYASSIGN_API_KEY": server.apiKey])
    }

    func open() throws -> Database { try Database(path: db) }

    func count(_ sql: String) throws -> Int {
        Int(try open().scalarInt(sql) ?? -1)
    }

    func audit() throws -> CLI.Result {
        try CLI.run(["audit", "--db", db, "--public-key", server.publicKeyPath])
    }

    var fileBytes: Int64 {
        ((try? FileManager.default.attributesOfItem(atPath: db)[.size]) as? NSNumber)?.int64Value ?? 0
    }
}
