import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Issue 20, item 5: invalid input rows are customers without a key, and monitoring sees them.
/// "Needs a person" is one number in `status`, the HTML page and the metrics file, and the
/// metrics file is readable by node_exporter under the unit's UMask.
@Suite struct ReportNeedsPersonTests {
    private func sync(_ bench: RunnerBench, _ file: String, _ extra: [String]) throws -> CLI.Result {
        try CLI.run(
            ["sync", file] + bench.runArguments(extra).dropFirst(),
            environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
    }

    @Test func invalidRowsNeedAPersonInStatusTheHTMLPageAndTheMetrics() throws {
        let bench = try RunnerBench(inventory: 3)
        let keys = (0..<4).map { "BAD-\($0)" }
        let night = bench.dir.path + "/night.csv"
        try ("license_key,owner_name,email\n" + keys.map { "\($0),Ann,not-an-address\n" }.joined())
            .write(toFile: night, atomically: true, encoding: .utf8)
        let metrics = bench.dir.path + "/keyassign.prom"
        let result = try sync(bench, night, ["--metrics-file", metrics])
        #expect(result.status == 0, "\(result.stderr)")
        let parsed = try MetricsFileCLITests.read(metrics)
        #expect(parsed.value("keyassign_rows{state=\"assigned\"}") == 3)
        #expect(parsed.value("keyassign_rows_needing_person") == 4)
        #expect(parsed.value("keyassign_invalid_rows") == 4)
        #expect(parsed.value("keyassign_invalid_rows_open") == 4)

        let status = try CLI.run(["status", "--db", bench.db])
        #expect(
            status.stdout.split(separator: "\n").contains { $0.hasPrefix("need a person") && $0.hasSuffix(" 4") },
            "\(status.stdout)")
        let json = try CLI.run(["status", "--json", "--db", bench.db])
        #expect(json.stdout.contains("\"needs_person\":4"), "\(json.stdout)")
        let page = bench.dir.path + "/night.html"
        #expect(try CLI.run(["report", "--html", page, "--db", bench.db]).status == 0)
        let html = try String(contentsOfFile: page, encoding: .utf8)
        #expect(html.contains("<span class=\"n\">4</span> need a person"))

        // The export fixed and imported again: nobody needs to look any more, everywhere.
        let fixed = bench.dir.path + "/night-fixed.csv"
        try ("license_key,owner_name,email\n" + keys.map { "\($0),Ann,ann@example.com\n" }.joined())
            .write(toFile: fixed, atomically: true, encoding: .utf8)
        let second = try sync(bench, fixed, ["--metrics-file", metrics])
        #expect(second.status == 0, "\(second.stderr)")
        let after = try MetricsFileCLITests.read(metrics)
        #expect(after.value("keyassign_rows_needing_person") == 0)
        #expect(after.value("keyassign_invalid_rows") == 4)
        #expect(after.value("keyassign_invalid_rows_open") == 0)
        #expect(try CLI.run(["status", "--json", "--db", bench.db]).stdout.contains("\"needs_person\":0"))
        #expect(try CLI.run(["report", "--html", page, "--db", bench.db]).status == 0)
        #expect(try String(contentsOfFile: page, encoding: .utf8).contains("<span class=\"n\">0</span> need a person"))
    }

    /// contrib/systemd's unit runs with UMask=0027: the file must still be readable by the
    /// collector, which runs as its own user and group.
    @Test func theMetricsFileIsReadableByTheCollectorUnderTheUnitsUMask() throws {
        let bench = try RunnerBench(inventory: 2)
        let metrics = bench.dir.path + "/keyassign.prom"
        let unit = try String(
            contentsOfFile: CLI.packageRoot + "/contrib/systemd/keyassign-sync.service", encoding: .utf8)
        let umask = try #require(unit.split(separator: "\n").first { $0.hasPrefix("UMask=") }?.dropFirst(6))
        let command = ([CLI.executableURL.path] + bench.runArguments(["--metrics-file", metrics]))
            .map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", "umask \(umask) && exec \(command)"]
        shell.environment = ["KEYASSIGN_API_KEY": bench.server.apiKey, "PATH": "/usr/bin:/bin"]
        shell.standardOutput = FileHandle.nullDevice
        shell.standardError = FileHandle.nullDevice
        try shell.run()
        shell.waitUntilExit()
        #expect(shell.terminationStatus == 0)
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: metrics)[.posixPermissions] as? Int)
        #expect(mode & 0o044 == 0o044, "mode \(String(mode, radix: 8)) under UMask=\(umask)")
    }
}
