import Foundation
import Testing

@testable import KeyAssign

/// Issue 20, item 8: an API-key file readable by its group or others gets a warning, as ssh
/// gives for a private key; a 0600 file and systemd's LoadCredential copy do not.
@Suite struct RunnerAPIKeyFileModeTests {
    @Test func aKeyFileReadableByOthersIsWarnedAbout() throws {
        let bench = try RunnerBench(inventory: 2)
        let file = bench.dir.path + "/api-key"
        try (bench.server.apiKey + "\n").write(toFile: file, atomically: true, encoding: .utf8)

        #expect(chmod(file, 0o644) == 0)
        let open = try bench.run(["--api-key-file", file])
        #expect(open.status == 0, "\(open.stderr)")
        #expect(
            open.stderr.contains("warning: --api-key-file \(file) is readable by its group and every user (mode 0644)"),
            "\(open.stderr)")
        #expect(open.stderr.contains("chmod 600"))
        #expect(!open.stderr.contains(bench.server.apiKey))

        #expect(chmod(file, 0o640) == 0)
        #expect(try bench.run(["--api-key-file", file]).stderr.contains("is readable by its group (mode 0640)"))

        #expect(chmod(file, 0o600) == 0)
        #expect(!(try bench.run(["--api-key-file", file]).stderr.contains("warning: --api-key-file")))

        // Under systemd: LoadCredential= puts the copy in $CREDENTIALS_DIRECTORY.
        let credentials = bench.dir.path + "/credentials"
        try FileManager.default.createDirectory(atPath: credentials, withIntermediateDirectories: true)
        let copy = credentials + "/api-key"
        try (bench.server.apiKey + "\n").write(toFile: copy, atomically: true, encoding: .utf8)
        #expect(chmod(copy, 0o440) == 0)
        let systemd = try CLI.run(
            bench.runArguments(["--api-key-file", copy]), environment: ["CREDENTIALS_DIRECTORY": credentials])
        #expect(systemd.status == 0, "\(systemd.stderr)")
        #expect(!systemd.stderr.contains("warning: --api-key-file"), "\(systemd.stderr)")
    }
}
