import Foundation
import Testing

@testable import KeyAssign

/// The sandbox's fault flags for these servers: bad values are usage errors naming the flag.
@Suite struct SandboxHardeningFlagTests {
    @Test func badFaultFlagsAreUsageErrors() throws {
        let directory = try TemporaryDirectory()
        let state = directory.path + "/s"
        for (flags, named) in [
            (["--waf-block", "(unclosed"], "waf-block"), (["--retry-after", "-1"], "retry-after"),
            (["--retry-after", "soon"], "retry-after"), (["--undocumented-code", "2"], "undocumented-code"),
        ] {
            let result = try CLI.run(["sandbox", "--state-dir", state] + flags)
            #expect(result.status == 64, "\(flags): \(result.stderr)")
            #expect(result.stderr.contains(named), "\(flags): \(result.stderr)")
        }
    }
}
