import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// `--metrics-file` through the real CLI against the sandbox: the file is parsed back as
/// Prometheus text, and checked by `promtool check metrics` (installed when missing)
/// (scripts/check-metrics installs it and runs the same check in CI).
@Suite struct MetricsFileCLITests {
    /// Samples by series name and label text, and which names carry # HELP and # TYPE.
    struct Parsed {
        var samples: [String: Double] = [:]
        var help: Set<String> = []
        var gauges: Set<String> = []

        init(_ text: String) {
            for line in text.split(separator: "\n").map(String.init) {
                if line.hasPrefix("# HELP ") {
                    help.insert(String(line.dropFirst(7).prefix { $0 != " " }))
                } else if line.hasPrefix("# TYPE ") {
                    let parts = line.split(separator: " ")
                    if parts.count == 4 && parts[3] == "gauge" { gauges.insert(String(parts[2])) }
                } else if let space = line.lastIndex(of: " ") {
                    samples[String(line[..<space])] = Double(line[line.index(after: space)...])
                }
            }
        }

        func value(_ series: String) -> Double? { samples[series] }

        var names: Set<String> { Set(samples.keys.map { String($0.prefix { $0 != "{" }) }) }
    }

    static func read(_ path: String) throws -> Parsed {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try promtoolAccepts(path)
        return Parsed(text)
    }

    /// `promtool check metrics` reads the file on stdin and exits non-zero on any problem
    /// (lint findings included). promtool is installed the way scripts/check-metrics installs
    /// it (Debian's `prometheus` package) when it is missing; without it the test fails
    /// (`RequiredTool`).
    static func promtoolAccepts(_ path: String) throws {
        let promtool = try RequiredTool.path("promtool", package: "prometheus")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: promtool)
        process.arguments = ["check", "metrics"]
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let said = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "promtool check metrics: \(said)")
    }

    @Test func aSuccessfulRunWritesEverySeriesWithHelpAndType() throws {
        let bench = try RunnerBench(inventory: 6, unknown: 2)
        let metrics = bench.dir.path + "/keyassign.prom"
        let before = Date().timeIntervalSince1970
        let result = try bench.run(["--metrics-file", metrics])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let parsed = try Self.read(metrics)
        #expect(parsed.value("keyassign_run_exit_status") == 0)
        #expect(parsed.value("keyassign_rows{state=\"assigned\"}") == 6)
        #expect(parsed.value("keyassign_rows{state=\"rejected\"}") == 2)
        // Every state is written, zeros included.
        for state in WorkState.allCases where state != .assigned && state != .rejected {
            #expect(parsed.value("keyassign_rows{state=\"\(state.rawValue)\"}") == 0)
        }
        #expect(parsed.value("keyassign_rows_needing_person") == 0)
        #expect(parsed.value("keyassign_run_requests{outcome=\"assigned\"}") == 6)
        #expect(parsed.value("keyassign_run_requests{outcome=\"rejected\"}") == 2)
        #expect(parsed.value("keyassign_run_requests{outcome=\"auth_stop\"}") == 0)
        #expect(parsed.value("keyassign_run_rate_limited_replies") == 0)
        #expect(parsed.value("keyassign_run_rate_limit_pauses") == 0)
        #expect((parsed.value("keyassign_run_duration_seconds") ?? -1) >= 0)
        let success = try #require(parsed.value("keyassign_last_success_timestamp_seconds"))
        #expect(success >= before.rounded(.down) && success <= Date().timeIntervalSince1970 + 1)
        #expect(parsed.value("keyassign_run_end_timestamp_seconds") == success)
        // Each series has # HELP and # TYPE gauge.
        // No quota stopped the run: nothing reopens.
        #expect(parsed.value("keyassign_quota_reopens_timestamp_seconds") == 0)
        #expect(parsed.names.count == 14)
        #expect(parsed.value("keyassign_rows_failed_earlier") == 0)
        for name in parsed.names {
            #expect(parsed.help.contains(name), "\(name) has no # HELP")
            #expect(parsed.gauges.contains(name), "\(name) has no # TYPE … gauge")
        }
        // The temporary file was renamed, not left beside the target.
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: bench.dir.path).filter { $0.contains(".prom.") } == [])
    }

    @Test func anAuthStopWritesExit3AndKeepsTheLastSuccess() throws {
        let bench = try RunnerBench(inventory: 3)
        let metrics = bench.dir.path + "/keyassign.prom"
        #expect(try bench.run(["--metrics-file", metrics]).status == 0)
        let first = try Self.read(metrics)
        let success = try #require(first.value("keyassign_last_success_timestamp_seconds"))
        #expect(success > 0)

        try bench.importRows((0..<5).map { _ in UUID().uuidString.lowercased() }, file: "night2.csv")
        Thread.sleep(forTimeInterval: 0.05)
        let refused = try bench.run(["--metrics-file", metrics], apiKey: "not-the-key")
        #expect(refused.status == 3, "stderr: \(refused.stderr)")
        let second = try Self.read(metrics)
        #expect(second.value("keyassign_run_exit_status") == 3)
        #expect(second.value("keyassign_last_success_timestamp_seconds") == success)
        #expect((second.value("keyassign_run_end_timestamp_seconds") ?? 0) > success)
        #expect(second.value("keyassign_rows{state=\"pending\"}") == 5)
        #expect(second.value("keyassign_rows{state=\"assigned\"}") == 3)
        #expect((second.value("keyassign_run_requests{outcome=\"auth_stop\"}") ?? 0) >= 1)
        #expect(second.value("keyassign_run_requests{outcome=\"assigned\"}") == 0)
    }

    @Test func failedRowsCountAsNeedingAPersonAndExit1() throws {
        // A verified undocumented code: failed for good (stale replies would leave the rows
        // uncertain, and the listing would settle them: issue 18).
        var faults = SandboxConfiguration.Faults()
        faults.undocumentedCode = 1
        let bench = try RunnerBench(inventory: 2)
        try bench.restart(faults: faults)
        let metrics = bench.dir.path + "/keyassign.prom"
        let result = try bench.run(["--metrics-file", metrics, "--max-attempts", "1"])
        #expect(result.status == 1)
        let parsed = try Self.read(metrics)
        #expect(parsed.value("keyassign_run_exit_status") == 1)
        #expect(parsed.value("keyassign_rows{state=\"failed\"}") == 2)
        #expect(parsed.value("keyassign_rows_needing_person") == 2)
        #expect(parsed.value("keyassign_run_requests{outcome=\"failed\"}") == 2)
        // No run ever succeeded: 0, so that "no success in 26 h" fires.
        #expect(parsed.value("keyassign_last_success_timestamp_seconds") == 0)
    }

    @Test func aConfigurationErrorStillWritesTheFile() throws {
        let bench = try RunnerBench(inventory: 2)
        let metrics = bench.dir.path + "/keyassign.prom"
        #expect(try bench.run(["--metrics-file", metrics]).status == 0)
        let success = try #require(try Self.read(metrics).value("keyassign_last_success_timestamp_seconds"))
        // No API key at all: 78 before anything is sent.
        let missing = try CLI.run(bench.runArguments(["--metrics-file", metrics]))
        #expect(missing.status == 78)
        let parsed = try Self.read(metrics)
        #expect(parsed.value("keyassign_run_exit_status") == 78)
        #expect(parsed.value("keyassign_last_success_timestamp_seconds") == success)
        #expect(parsed.value("keyassign_rows{state=\"assigned\"}") == 2)
        #expect(parsed.value("keyassign_run_requests{outcome=\"assigned\"}") == 0)
    }

    @Test func syncWritesItsOwnStatusAndAnUnwritableFileFailsTheRun() throws {
        let bench = try RunnerBench(inventory: 2)
        let exports = bench.dir.path + "/exports"
        try FileManager.default.createDirectory(atPath: exports, withIntermediateDirectories: true)
        try "customer,city\nJane,Paris\n".write(toFile: exports + "/broken.csv", atomically: true, encoding: .utf8)
        let metrics = bench.dir.path + "/keyassign.prom"
        var arguments = bench.runArguments(["--metrics-file", metrics, exports])
        arguments[0] = "sync"
        let sync = try CLI.run(arguments, environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
        // The run succeeded, the broken export makes sync exit 65: the file says 65 and no success.
        #expect(sync.status == 65, "stderr: \(sync.stderr)")
        let parsed = try Self.read(metrics)
        #expect(parsed.value("keyassign_run_exit_status") == 65)
        #expect(parsed.value("keyassign_rows{state=\"assigned\"}") == 2)
        #expect(parsed.value("keyassign_run_requests{outcome=\"assigned\"}") == 2)
        #expect(parsed.value("keyassign_last_success_timestamp_seconds") == 0)

        // A metrics file that cannot be written must not pass for a quiet night.
        let nowhere = bench.dir.path + "/no-such-dir/keyassign.prom"
        let unwritable = try bench.run(["--metrics-file", nowhere])
        #expect(unwritable.status == 74)
        #expect(unwritable.stderr.contains("--metrics-file \(nowhere)"))
    }

    @Test func aRunStoppedBySIGTERMWritesExit143() throws {
        var faults = SandboxConfiguration.Faults()
        faults.latency = .fixed(milliseconds: 200)
        let bench = try RunnerBench(inventory: 200, faults: faults)
        let metrics = bench.dir.path + "/keyassign.prom"
        let process = try bench.startRun(["--concurrency", "4", "--metrics-file", metrics])
        // Signal only once rows are being answered: the handlers are installed by then, however
        // slow the machine (a SIGTERM before them would simply kill the process).
        var deadline = Date().addingTimeInterval(60)
        while try bench.count("SELECT count(*) FROM work WHERE state = 'assigned'") == 0 && Date() < deadline {
            usleep(20_000)
        }
        kill(process.processIdentifier, SIGTERM)
        deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        #expect(process.terminationStatus == 143)
        let parsed = try Self.read(metrics)
        #expect(parsed.value("keyassign_run_exit_status") == 143)
        #expect(parsed.value("keyassign_rows{state=\"in_flight\"}") == 0)
        let assigned = try #require(parsed.value("keyassign_rows{state=\"assigned\"}"))
        #expect(assigned > 0 && assigned < 200)
        #expect(parsed.value("keyassign_run_requests{outcome=\"assigned\"}") == assigned)
        #expect(parsed.value("keyassign_last_success_timestamp_seconds") == 0)
    }

    @Test func aRunRefusedByTheLockWritesExit75() throws {
        let bench = try RunnerBench(inventory: 2)
        // Another process's run: this test process holds the database's lock.
        let holder = try DatabaseLock.acquire(databasePath: bench.db, command: "test holder")
        defer { holder?.release() }
        let metrics = bench.dir.path + "/keyassign.prom"
        #expect(try bench.run(["--metrics-file", metrics]).status == 75)
        let parsed = try Self.read(metrics)
        #expect(parsed.value("keyassign_run_exit_status") == 75)
        #expect(parsed.value("keyassign_rows{state=\"pending\"}") == 2)
        #expect(parsed.value("keyassign_run_requests{outcome=\"assigned\"}") == 0)
    }

    @Test func renderingIsPureAndTheLastSuccessParsesBack() {
        let snapshot = MetricsFile.Snapshot(
            exitStatus: 1, seconds: 12.3456, endedAt: 1_764_650_000.25,
            lastSuccess: 1_764_600_000.5, rows: [.failed: 2, .uncertain: 1],
            requests: ["assigned": 4, "new\"outcome": 1], rateLimited: 3,
            pauses: 1, untrustedReplies: 0)
        let text = MetricsFile.render(snapshot)
        #expect(text.contains("keyassign_run_duration_seconds 12.346\n"))
        #expect(text.contains("keyassign_rows_needing_person 3\n"))
        #expect(text.contains("keyassign_run_requests{outcome=\"new\\\"outcome\"} 1\n"))
        #expect(MetricsFile.lastSuccess(in: text) == 1_764_600_000.5)
        #expect(MetricsFile.lastSuccess(in: "keyassign_last_success_timestamp_seconds 0\n") == nil)
        #expect(MetricsFile.lastSuccess(in: "garbage") == nil)
    }
}
