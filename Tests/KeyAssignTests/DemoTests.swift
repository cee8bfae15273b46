import Foundation
import Testing

@testable import KeyAssign

@Suite struct DemoTests {
    /// `keyassign demo` is the README's first command: it must show 800s, 801s, invalid rows
    /// and recovered faults, and leave a database that the other commands can read.
    @Test func demoRunsTheWholePipelineOnTheSamples() throws {
        let dir = try TemporaryDirectory()
        let package = CLI.packageRoot
        let result = try CLI.run(["demo", "--state-dir", dir.path + "/demo"], currentDirectory: package)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")

        let db = try Database(path: dir.path + "/demo/demo.sqlite", create: false)
        let status = try StatusReport.load(from: db)
        let count = { (state: WorkState) in status.counts.first { $0.state == state }?.count ?? 0 }
        #expect(count(.assigned) > 0)
        #expect(count(.rejected) + count(.uncertain) >= 5)  // unknown and pre-assigned keys answer 801
        #expect(count(.pending) + count(.inFlight) + count(.retry) == 0)
        #expect(status.invalidRows > 0)
        #expect(try db.scalarInt("SELECT count(*) FROM attempts WHERE http_status IN (429, 503)") ?? 0 > 0)
        #expect(result.stdout.contains("database: \(dir.path)/demo/demo.sqlite"))

        let audit = try CLI.run([
            "audit", "--db", dir.path + "/demo/demo.sqlite",
            "--public-key", dir.path + "/demo/sandbox/public.pem",
        ])
        #expect(audit.status == 0, "\(audit.stdout)")
    }
}
