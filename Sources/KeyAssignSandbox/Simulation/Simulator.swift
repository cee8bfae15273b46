import Foundation
import KeyAssign

/// Runs seeded scenarios (`SimulationWorld`) and reports the invariants they broke:
/// `scripts/simulate`'s engine, and what `SimulationTests` drive. One RSA key pair serves every
/// scenario of a process (generating one costs more than a scenario).
public final class Simulator: @unchecked Sendable {
    public struct Outcome: Sendable {
        public var scenario: SimulationScenario
        public var violations: [SimulationViolation]
    }

    public let rules: SimulationRules
    private let replies: SignedReplyMaker
    private let keyRing: KeyRing
    private let directory: String

    public init(rules: SimulationRules = .final) throws {
        self.rules = rules
        let signer = try ReplySigner.generate()
        replies = SignedReplyMaker(signer: signer)
        // Temporary files on tmpfs when there is one: every claim is an fdatasync.
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        directory = "\(base)/keyassign-simulate-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let keyPath = "\(directory)/global-public.pem"
        try Array(signer.publicKeyPEM.utf8).write(toFile: keyPath)
        keyRing = try KeyRing(specs: ["global=\(keyPath)"])
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// One scenario. `trace` receives every event and action, for `--seed S --trace`.
    public func run(seed: UInt64, trace: ((String) -> Void)? = nil) -> Outcome {
        let scenario = SimulationScenario(seed: seed, rules: rules)
        trace?("scenario \(seed): \(scenario.summary)")
        do {
            let world = try SimulationWorld(
                scenario: scenario, rules: rules, replies: replies, keyRing: keyRing,
                directory: directory, trace: trace)
            world.run()
            return Outcome(scenario: scenario, violations: world.violations)
        } catch {
            return Outcome(
                scenario: scenario,
                violations: [
                    SimulationViolation(invariant: .stuck, detail: "the scenario cannot be set up: \(error)", at: 0)
                ])
        }
    }
}

extension Array where Element == UInt8 {
    fileprivate func write(toFile path: String) throws {
        try Data(self).write(to: URL(fileURLWithPath: path))
    }
}
