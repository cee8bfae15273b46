import Dispatch
import Foundation
import KeyAssignSandbox
import Synchronization

// scripts/simulate's engine: `keyassign-simulate N [--first S] [--jobs J] [--rules final|current]
// [--only INV,INV]` runs N seeds and prints "N scenarios, K violations" with the violating
// seeds; `keyassign-simulate --seed S [--trace]` replays one. Exit 0 when nothing was violated,
// 1 when something was, 64 for bad arguments.

func usage(_ message: String) -> Never {
    FileHandle.standardError.write(
        Data(
            "keyassign-simulate: \(message)\nusage: keyassign-simulate N [--first SEED] [--jobs J] [--until-violation] [--rules final|current] [--only INVARIANT,...]\n       keyassign-simulate --seed SEED [--trace] [--rules final|current]\n"
                .utf8))
    exit(64)
}

var count: Int?
var first: UInt64 = 1
var single: UInt64?
var trace = false
var jobs = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8))
var rules = SimulationRules.final
var only: Set<String>?
var untilViolation = false
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    func value() -> String {
        guard let value = arguments.next() else { usage("\(argument) needs a value") }
        return value
    }
    switch argument {
    case "--seed":
        guard let seed = UInt64(value()) else { usage("--seed takes a number") }
        single = seed
    case "--first":
        guard let seed = UInt64(value()) else { usage("--first takes a number") }
        first = seed
    case "--trace": trace = true
    case "--until-violation": untilViolation = true
    case "--jobs":
        guard let value = Int(value()), value > 0 else { usage("--jobs takes a positive number") }
        jobs = value
    case "--rules":
        switch value() {
        case "final": rules = .final
        case "current": rules = .current
        default: usage("--rules is final or current")
        }
    case "--only":
        let names = Set(value().split(separator: ",").map(String.init))
        let known = Set(SimulationViolation.Invariant.allCases.map(\.rawValue))
        if let unknown = names.subtracting(known).first {
            usage("unknown invariant \(unknown); known: \(known.sorted().joined(separator: ", "))")
        }
        only = names
    case "-h", "--help": usage("help")
    default:
        guard let number = Int(argument), number > 0 else { usage("unknown argument \(argument)") }
        count = number
    }
}

let simulator: Simulator
do {
    simulator = try Simulator(rules: rules)
} catch {
    FileHandle.standardError.write(Data("keyassign-simulate: \(error)\n".utf8))
    exit(70)
}

func relevant(_ violations: [SimulationViolation], only: Set<String>?) -> [SimulationViolation] {
    guard let only else { return violations }
    return violations.filter { only.contains($0.invariant.rawValue) }
}

/// Seeds first, first + 1 … on `jobs` threads; each scenario is independent of the others.
func runBatch(_ simulator: Simulator, first: UInt64, count: Int, jobs: Int, only: Set<String>?)
    -> [[SimulationViolation]]
{
    let results = Mutex<[[SimulationViolation]]>(Array(repeating: [], count: count))
    DispatchQueue.concurrentPerform(iterations: jobs) { job in
        var index = job
        while index < count {
            let violations = relevant(simulator.run(seed: first + UInt64(index)).violations, only: only)
            results.withLock { $0[index] = violations }
            index += jobs
        }
    }
    return results.withLock { $0 }
}

if let seed = single {
    let outcome = simulator.run(seed: seed, trace: trace ? { print($0) } : nil)
    let violations = relevant(outcome.violations, only: only)
    if !trace { print("scenario \(seed): \(outcome.scenario.summary)") }
    for violation in violations { print("seed \(seed): \(violation)") }
    print("1 scenarios, \(violations.isEmpty ? 0 : 1) violations")
    exit(violations.isEmpty ? 0 : 1)
}

guard let count else { usage("give a number of scenarios, or --seed SEED") }
if untilViolation {
    // Seeds in order, one at a time, to the first that breaks an invariant: how many seeds a
    // planted defect takes to show (scripts/defects).
    for index in 0..<count {
        let seed = first + UInt64(index)
        let violations = relevant(simulator.run(seed: seed).violations, only: only)
        if let violation = violations.first {
            print("seed \(seed): \(violation)")
            print("first violation after \(index + 1) scenarios (seed \(seed))")
            exit(1)
        }
    }
    print("\(count) scenarios, 0 violations")
    exit(0)
}
let results = runBatch(simulator, first: first, count: count, jobs: jobs, only: only)
var violating = 0
var byInvariant: [String: Int] = [:]
for index in 0..<count where !results[index].isEmpty {
    violating += 1
    let seed = first + UInt64(index)
    for name in Set(results[index].map(\.invariant.rawValue)) { byInvariant[name, default: 0] += 1 }
    print(
        "seed \(seed): \(results[index][0])\(results[index].count > 1 ? " (and \(results[index].count - 1) more)" : "")"
    )
}
if !byInvariant.isEmpty {
    print(
        "by invariant: "
            + byInvariant.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
}
print("\(count) scenarios, \(violating) violations")
exit(violating == 0 ? 0 : 1)
