import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

@Suite struct SandboxPartsTests {
    @Test func theSameSeedInjectsTheSameFaults() {
        var faults = SandboxConfiguration.Faults()
        faults.fail5xx = 0.3
        faults.dropAfter = 0.2
        faults.latency = .range(minMilliseconds: 5, maxMilliseconds: 50)
        let a = SandboxFaultDice(faults, seed: 42)
        let b = SandboxFaultDice(faults, seed: 42)
        let c = SandboxFaultDice(faults, seed: 43)
        let rollsA = (0..<200).map { _ in a.roll() }
        #expect(rollsA == (0..<200).map { _ in b.roll() })
        #expect(rollsA != (0..<200).map { _ in c.roll() })
        let failures = rollsA.filter(\.fail5xx).count
        #expect(failures > 30 && failures < 90)
        #expect(rollsA.allSatisfy { (5...50).contains($0.delayMilliseconds) })
    }

    @Test func signedTextMatchesThePublishedExamplesByteForByte() throws {
        let maker = SignedReplyMaker(signer: try ReplySigner.generate(bits: 2048))
        for (fixture, code, message) in [
            ("reply-800.json", 800, "License key assigned"),
            ("reply-801.json", 801, "Invalid or already assigned license key"),
        ] {
            let published =
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: URL(fileURLWithPath: CLI.fixture(fixture)))) as? [String: Any]
            let response = try #require(published?["response"] as? [String: Any])
            let timestamp = try #require(response["timestamp"] as? Int)
            let ours =
                try JSONSerialization.jsonObject(
                    with: Data(maker.envelope(code: code, message: message, timestamp: timestamp))) as? [String: Any]
            #expect(ours?["response_base64"] as? String == published?["response_base64"] as? String)
            #expect(ours?["private_key_used"] as? String == "global")
        }
        #expect(SignedReplyMaker.jsonString("a/b \"c\" é") == #""a\/b \"c\" \u00e9""#)
    }

    @Test func parsesEachBodyEncoding() {
        let form = AssignRequestFields(
            contentType: "application/x-www-form-urlencoded",
            body: Array("license_key=A%2FB+C&owner_name=Ren%C3%A9e&junk&=x&email=".utf8))
        // A bare name counts as an empty field, as PHP reads it.
        #expect(form.fields == ["license_key": "A/B C", "owner_name": "Renée", "email": "", "junk": ""])
        let json = AssignRequestFields(
            contentType: "application/json; charset=utf-8",
            body: Array(#"{"license_key":"K","owner_name":null,"n":3}"#.utf8))
        #expect(json.fields == ["license_key": "K"])
        #expect(AssignRequestFields(contentType: "application/json", body: Array("not json".utf8)).fields.isEmpty)
        let multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"license_key\"\r\n\r\nK-1\r\n--XyZ--\r\n"
        #expect(
            AssignRequestFields(contentType: "multipart/form-data; boundary=\"XyZ\"", body: Array(multipart.utf8))
                .fields
                == ["license_key": "K-1"])
        #expect(AssignRequestFields(contentType: "multipart/form-data", body: Array(multipart.utf8)).fields.isEmpty)
    }

    @Test func latencyAndProbabilitiesAreValidated() throws {
        #expect(try SandboxConfiguration.Latency.parse("25") == .fixed(milliseconds: 25))
        #expect(try SandboxConfiguration.Latency.parse("10-40") == .range(minMilliseconds: 10, maxMilliseconds: 40))
        #expect(throws: KeyAssignError.self) { try SandboxConfiguration.Latency.parse("40-10") }
        #expect(throws: KeyAssignError.self) { try SandboxConfiguration.Latency.parse("fast") }
        let directory = try TemporaryDirectory()
        var configuration = SandboxConfiguration(stateDirectory: directory.path, inventory: .keys([]))
        configuration.faults.stale = 1.5
        #expect(throws: KeyAssignError.self) { try SandboxServer.start(configuration) }
    }

    @Test func theRateLimiterRefillsAtItsRate() {
        var limiter = SandboxRateLimiter(.init(rate: 2, burst: 2), now: 100)
        #expect(limiter.take(now: 100) == nil)
        #expect(limiter.take(now: 100) == nil)
        #expect(limiter.take(now: 100) == 1)
        #expect(limiter.take(now: 100.6) == nil)
    }
}
