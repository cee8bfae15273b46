import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Issue 20 item 8 and issue 18: the live progress line on a real terminal (a pty from
/// script(1), sized with stty): cut to the width, never wrapped; log lines on lines of their
/// own; "server unreachable" rather than "0 rows/s"; counts of rows that add up to the rows
/// done, and a row the end-of-run listing settled is no longer `uncertain`.
@Suite struct RunnerProgressLineTests {
    static let clear = "\r\u{1B}[K"

    /// Runs `keyassign arguments` on a terminal `columns` wide; returns what it wrote there.
    static func onTerminal(_ arguments: [String], columns: Int, apiKey: String) throws -> String {
        let command = ([CLI.executableURL.path] + arguments)
            .map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try RequiredTool.path("script", package: "bsdutils"))
        process.arguments = ["-qec", "stty cols \(columns) rows 24; exec \(command)", "/dev/null"]
        process.environment = ["KEYASSIGN_API_KEY": apiKey, "PATH": "/usr/bin:/bin", "TERM": "xterm"]
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    /// The screen cut into what was written between clears and line breaks: the live line's
    /// states (`N/T (…`) and the other lines. A log line glued after the live line would be a
    /// piece holding " keyassign: " that does not start with its time stamp.
    static func split(_ screen: String) -> (drawn: [String], lines: [String]) {
        let pieces = screen.replacingOccurrences(of: clear, with: "\n").replacingOccurrences(of: "\r\n", with: "\n")
            .components(separatedBy: "\n").filter { !$0.isEmpty }
        let isLive = { (piece: String) in piece.range(of: #"^[0-9]+/[0-9]+ \("#, options: .regularExpression) != nil }
        return (pieces.filter(isLive), pieces.filter { !isLive($0) })
    }

    @Test func anUnreachableServerIsSaidAndLogLinesStartOnTheirOwnLine() throws {
        let dir = try TemporaryDirectory()
        let db = dir.path + "/k.sqlite"
        let file = dir.path + "/n.csv"
        try Data("license_key,owner_name,email\nK1,Ann,ann@example.com\n".utf8).write(to: URL(fileURLWithPath: file))
        #expect(try CLI.run(["import", "--db", db, file]).status == 0)
        let screen = try Self.onTerminal(
            [
                "run", "--server", "http://127.0.0.1:9", "--allow-insecure-http",
                "--public-key", CLI.fixture("docs-demo-global-public.pem"), "--db", db,
                "--max-wait", "3",
            ], columns: 60, apiKey: "k")
        let (drawn, lines) = Self.split(screen)
        #expect(drawn.count >= 3, "\(screen.debugDescription)")
        #expect(drawn.allSatisfy { $0.count <= 59 }, "\(drawn)")
        #expect(drawn.contains { $0.hasPrefix("0/1 (0.0%) server unreachable for ") }, "\(drawn)")
        #expect(!drawn.contains { $0.contains("rows/s") && !$0.contains("unreachable") && $0 != drawn.last })
        // The log lines (timestamped) each begin a line: never glued after the live line.
        let logged = lines.filter { $0.contains(" keyassign: ") }
        #expect(
            logged.contains {
                $0.contains("error keyassign: [KeyAssign] stopping the run: the license server is unreachable")
            }, "\(lines)")
        #expect(logged.allSatisfy { $0.hasPrefix("20") }, "\(logged)")
        #expect(!drawn.contains { $0.contains(" keyassign: ") }, "\(drawn)")
    }

    @Test func theCountsAddUpAndASettledRowLeavesUncertain() throws {
        // Three rows whose earlier attempts may have reached the server, put back in the queue:
        // this run's 801s make them uncertain, and its end-of-run listing settles them.
        let bench = try ReconcileCLITests.uncertainBench(3)
        #expect(try CLI.run(["retry", "--db", bench.db, "--state", "uncertain"]).stdout.contains("requeued 3 rows"))
        let screen = try Self.onTerminal(bench.runArguments([]), columns: 200, apiKey: bench.server.apiKey)
        let (drawn, _) = Self.split(screen)
        let last = try #require(drawn.last, "\(screen.debugDescription)")
        func number(after word: String, in line: String) -> Int? {
            guard let range = line.range(of: word + " ") else { return nil }
            return Int(line[range.upperBound...].prefix { $0.isNumber })
        }
        let done = try #require(Int(last.prefix { $0.isNumber }))
        let states = ["assigned", "rejected", "uncertain", "failed"].map { number(after: $0, in: last) ?? -1 }
        #expect(states.reduce(0, +) == done, "\(last)")
        #expect(done == 3, "\(last)")
        #expect(number(after: "assigned", in: last) == 3, "\(last)")
        #expect(number(after: "uncertain", in: last) == 0, "\(last)")
        let counts = try bench.stateCounts()
        #expect(counts == ["assigned": 3], "\(counts) \(screen.debugDescription)")
    }
}
