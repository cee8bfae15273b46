import Foundation
import Testing

@testable import KeyAssign

@Suite struct CLISmokeTests {
    @Test func versionRuns() throws {
        let result = try CLI.run(["--version"])
        #expect(result.status == 0)
        #expect(result.stdout.contains(KeyAssignVersion.string))
        #expect(FileManager.default.fileExists(atPath: CLI.fixture("reply-800.json")))
    }
}
