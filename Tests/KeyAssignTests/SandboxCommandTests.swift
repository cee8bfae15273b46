import Foundation
import Testing

@testable import KeyAssign

@Suite struct SandboxCommandTests {
    /// Mode bits of a file, without the type bits.
    private func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test func writesItsFilesServesAndStopsCleanlyOnSIGTERM() async throws {
        let directory = try TemporaryDirectory()
        let state = directory.path + "/state"
        let output = Pipe()
        let process = try CLI.start(
            ["sandbox", "--state-dir", state, "--generate-keys", "5", "--seed", "7"],
            standardOutput: output)
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        // DIR/port appears only once the socket is bound.
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: state + "/port") && Date() < deadline && process.isRunning {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        let portText = try String(contentsOfFile: state + "/port", encoding: .utf8)
        let port = try #require(Int(portText.trimmingCharacters(in: .whitespacesAndNewlines)))
        let firstLine = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        #expect(firstLine == "http://127.0.0.1:\(port)\n")

        #expect(try mode(state + "/api-key") == 0o600)
        #expect(try mode(state + "/private.pem") == 0o600)
        let apiKey = try String(contentsOfFile: state + "/api-key", encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)
        let keys = try String(contentsOfFile: state + "/keys.txt", encoding: .utf8).split(separator: "\n").map(
            String.init)
        #expect(keys.count == 5)

        let verifier = ReplyVerifier(keyRing: try KeyRing(specs: ["global=" + state + "/public.pem"]))
        let reply = try await SandboxHTTP.post(
            URL(string: "http://127.0.0.1:\(port)/api/v1/assign-license-key")!,
            form: [("api_key", apiKey), ("license_key", keys[0])])
        guard case .trusted(let payload) = verifier.verify(reply.body, maxAge: nil) else {
            Issue.record("the CLI sandbox's reply does not verify with DIR/public.pem")
            return
        }
        #expect(payload.code == 800)

        process.terminate()  // SIGTERM
        let stopDeadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < stopDeadline { try await Task.sleep(nanoseconds: 20_000_000) }
        #expect(!process.isRunning)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)
        let assignments = try String(contentsOfFile: state + "/assignments.jsonl", encoding: .utf8)
        #expect(assignments.contains(keys[0]))
    }

    @Test func badProbabilityIsAUsageError() throws {
        let directory = try TemporaryDirectory()
        let result = try CLI.run(["sandbox", "--state-dir", directory.path + "/s", "--fail-5xx", "2"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("fail-5xx"))
        let latency = try CLI.run(["sandbox", "--state-dir", directory.path + "/s", "--latency", "9-1"])
        #expect(latency.status == 64)
        #expect(latency.stderr.contains("latency"))
        let missing = try CLI.run([
            "sandbox", "--state-dir", directory.path + "/s", "--keys", directory.path + "/nope.txt",
        ])
        #expect(missing.status == 65)
        #expect(missing.stderr.contains("nope.txt"))
    }
}
