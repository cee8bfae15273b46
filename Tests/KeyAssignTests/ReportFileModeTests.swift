import Foundation
import Testing

@testable import KeyAssign

/// Files that hold license keys and customers' data: mode 0600 under the usual umask 022,
/// and never written through a symbolic link planted at their temporary name.
@Suite struct ReportFileModeTests {
    /// `keyassign arguments…` under `umask 022`, the common default that made files 0644.
    static func underUmask022(_ arguments: [String], environment: [String: String] = [:]) throws -> CLI.Result {
        let quoted = ([CLI.executableURL.path] + arguments).map {
            "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "umask 022 && exec " + quoted.joined(separator: " ")]
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("KEYASSIGN_") }
        env.merge(environment) { _, new in new }
        process.environment = env
        let err = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        try process.run()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CLI.Result(
            status: process.terminationStatus, stdout: "", stderr: String(decoding: errData, as: UTF8.self))
    }

    static func mode(_ path: String) -> Int? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return Int(info.st_mode & 0o777)
    }

    @Test func reportsSummariesAndTheDatabaseAre0600UnderUmask022() throws {
        let dir = try TemporaryDirectory()
        let bench = try RunnerBench(inventory: 3, unknown: 1)
        // A database created under umask 022, by the real import.
        let db = dir.path + "/fresh.sqlite"
        let imported = try Self.underUmask022(["import", "--db", db, bench.dir.path + "/sales.csv"])
        #expect(imported.status == 0, "stderr: \(imported.stderr)")
        #expect(Self.mode(db) == 0o600)
        let summary = dir.path + "/summary.json"
        let run = try Self.underUmask022(
            [
                "run", "--server", bench.server.baseURL, "--public-key", bench.server.publicKeyPath,
                "--db", db, "--rate", "0", "--summary-json", summary,
            ],
            environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(Self.mode(summary) == 0o600)
        #expect(Self.mode(db + "-wal") == nil || Self.mode(db + "-wal") == 0o600)

        let output = dir.path + "/report.csv"
        #expect(try Self.underUmask022(["report", "--db", db, "--output", output]).status == 0)
        #expect(Self.mode(output) == 0o600)
        let invalid = dir.path + "/invalid.csv"
        #expect(try Self.underUmask022(["report", "--db", db, "--invalid", "--output", invalid]).status == 0)
        #expect(Self.mode(invalid) == 0o600)
        // --split: a new directory only its owner can enter, and 0600 files in it.
        let split = dir.path + "/split"
        #expect(try Self.underUmask022(["report", "--db", db, "--split", split]).status == 0)
        #expect(Self.mode(split) == 0o700)
        #expect(Self.mode(split + "/success.csv") == 0o600)
        #expect(Self.mode(split + "/errors.csv") == 0o600)
        // Replacing an existing report (even one a person made 0644) leaves it 0600.
        _ = FileManager.default.createFile(
            atPath: output + ".old", contents: Data("x".utf8), attributes: [.posixPermissions: 0o644])
        #expect(rename(output + ".old", output) == 0)
        #expect(try Self.underUmask022(["report", "--db", db, "--output", output]).status == 0)
        #expect(Self.mode(output) == 0o600)
    }

    @Test func aSymlinkPlantedAtThePartialNameIsNeverFollowed() throws {
        let dir = try TemporaryDirectory()
        let bench = try RunnerBench(inventory: 2)
        #expect(try bench.run().status == 0)
        let victim = dir.path + "/victim.txt"
        try "untouched\n".write(toFile: victim, atomically: true, encoding: .utf8)

        let output = dir.path + "/report.csv"
        try FileManager.default.createSymbolicLink(atPath: output + ".partial", withDestinationPath: victim)
        let result = try CLI.run(["report", "--db", bench.db, "--output", output])
        #expect(result.status == 74, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("report.csv.partial already exists"), "stderr: \(result.stderr)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "untouched\n")
        #expect(!FileManager.default.fileExists(atPath: output))

        // The same in an existing --split directory.
        let split = dir.path + "/split"
        try FileManager.default.createDirectory(atPath: split, withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(atPath: split + "/success.csv.partial", withDestinationPath: victim)
        let splitResult = try CLI.run(["report", "--db", bench.db, "--split", split])
        #expect(splitResult.status == 74, "stderr: \(splitResult.stderr)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "untouched\n")
        #expect(!FileManager.default.fileExists(atPath: split + "/success.csv"))
    }

    @Test func aPartialFileLeftByAnInterruptedReportIsReplaced() throws {
        let dir = try TemporaryDirectory()
        let bench = try RunnerBench(inventory: 2)
        #expect(try bench.run().status == 0)
        let output = dir.path + "/report.csv"
        _ = FileManager.default.createFile(
            atPath: output + ".partial", contents: Data("half a repo".utf8),
            attributes: [.posixPermissions: 0o644])
        let result = try CLI.run(["report", "--db", bench.db, "--output", output])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(try String(contentsOfFile: output, encoding: .utf8).hasPrefix("license_key,"))
        #expect(Self.mode(output) == 0o600)
        #expect(!FileManager.default.fileExists(atPath: output + ".partial"))
    }
}
