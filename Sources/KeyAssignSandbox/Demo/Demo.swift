import Foundation
import KeyAssign

/// `keyassign demo`: the whole nightly pipeline in one command, with nothing to configure.
///
/// It starts the sandbox license server in-process on a free loopback port with a fresh
/// state directory, stocks its inventory from most — not all — of the keys in `samples/`
/// (and assigns a few in advance, as if sold twice), injects a few faults, then imports the
/// samples and runs exactly as `keyassign sync` would. The point is to see every kind of
/// outcome: 800s, 801s, invalid input rows, and faults that a retry recovers.
public enum Demo {
    public struct Options: Sendable {
        /// The samples directory; nil looks for `samples/` here or beside the package.
        public var samplesDirectory: String?
        /// Where to keep the sandbox's state and the database; nil makes a fresh temporary one.
        public var stateDirectory: String?

        public init(samplesDirectory: String? = nil, stateDirectory: String? = nil) {
            self.samplesDirectory = samplesDirectory
            self.stateDirectory = stateDirectory
        }
    }

    /// The faults the demo's sandbox injects: enough that a run of ~35 rows meets a few of
    /// each, all of them recoverable by a retry. (An assign-then-drop would end `uncertain`:
    /// a real outcome, but not one a first demo should end on.)
    static func faults() -> SandboxConfiguration.Faults {
        var faults = SandboxConfiguration.Faults()
        faults.fail5xx = 0.15
        faults.fail429 = 0.05
        faults.dropBefore = 0.05
        faults.latency = .range(minMilliseconds: 5, maxMilliseconds: 40)
        faults.seed = 2026
        return faults
    }

    public static func run(_ options: Options, output: @escaping (String) -> Void) throws -> ExitStatus {
        let samples = try locateSamples(options.samplesDirectory)
        let state: String
        if let given = options.stateDirectory {
            do {
                try FileManager.default.createDirectory(atPath: given, withIntermediateDirectories: true)
            } catch {
                throw KeyAssignError(.ioError, "cannot create \(given): \(error.localizedDescription)")
            }
            state = given
        } else {
            state = try makeTemporaryDirectory()
        }
        let databasePath = state + "/demo.sqlite"
        output("keyassign demo: samples from \(samples), state in \(state)\n")

        // 1. Import, exactly as `keyassign import samples/` would.
        output("\n== import \(samples)\n")
        let db = try Database(path: databasePath)
        var importOptions = ImportOptions(databasePath: databasePath)
        importOptions.settle = 0  // the samples are complete files, however recently checked out
        let imported = ImportJob.run(
            [samples], options: importOptions, into: db,
            output: { output($0 + "\n") })
        if imported.exitStatus != .ok { return imported.exitStatus }

        // 2. A sandbox that knows most of the imported keys, some of them sold already.
        let keys = try RowReport.licenseKeys(in: db)
        let plan = InventoryPlan(keys: keys)
        var configuration = SandboxConfiguration(stateDirectory: state + "/sandbox", inventory: .keys(plan.inventory))
        let faults = faults()
        configuration.faults = faults
        let sandbox = try SandboxServer.start(configuration)
        defer { sandbox.shutdown() }
        for key in plan.assignedInAdvance {
            try sandbox.preassign(key: key, ownerName: "Someone Else", email: "someone.else@example.com")
        }
        output("\n== sandbox license server at \(sandbox.baseURL)\n")
        output(
            "inventory: \(plan.inventory.count) of the \(keys.count) imported keys; "
                + "\(plan.assignedInAdvance.count) of them assigned in advance; "
                + "\(plan.unknown.count) unknown to the server\n")
        output(
            "faults: \(percent(faults.fail5xx)) HTTP 503, \(percent(faults.fail429)) HTTP 429, "
                + "\(percent(faults.dropBefore)) connection dropped before processing, \(faults.latency.text) latency\n"
        )

        // 3. Run, as `keyassign run` would, with short backoffs so the demo is quick.
        output("\n== run\n")
        var runOptions = RunOptions(
            databasePath: databasePath,
            endpoint: try ServerEndpoint(base: sandbox.baseURL, allowInsecureHTTP: false),
            apiKey: sandbox.apiKey)
        runOptions.rate = 25
        runOptions.concurrency = 4
        runOptions.maxAttempts = 6
        runOptions.backoffBase = 0.2
        runOptions.backoffCap = 2
        runOptions.maxWait = 20
        let status = RunSetup.execute(
            runOptions, publicKeys: ["global=" + sandbox.publicKeyPath],
            logger: RunSetup.logger(quiet: false))

        // 4. What happened, and where to look next.
        let ledger = sandbox.ledger()
        let retried = try db.scalarInt("SELECT count(*) FROM work WHERE state = 'assigned' AND attempts > 1") ?? 0
        output("\n== outcome\n")
        output(try StatusReport.load(from: db).render() + "\n")
        output(
            "\nthe sandbox injected \(ledger.faults.fail5xx) × 503, \(ledger.faults.fail429) × 429 and "
                + "\(ledger.faults.dropBefore) dropped connections; \(retried) rows were assigned after a retry\n")
        let uncertain = try RowReport.licenseKeys(in: db, state: .uncertain)
        if !uncertain.isEmpty {
            output(
                """

                \(uncertain.count) row\(uncertain.count == 1 ? " is" : "s are") still uncertain: an earlier attempt may have been \
                processed and the retry was answered 801, and the server's key listing could not settle it yet. \
                For example: \(tool) history --db \(databasePath) \(uncertain[0])

                """)
        }
        let settled = try db.scalarInt("SELECT count(DISTINCT work_id) FROM settlements") ?? 0
        output(
            "\nthe server's signed key listing settled or explained \(settled) row\(settled == 1 ? "" : "s") \(uncertain.isEmpty ? " (no uncertain row is left for a person to check)" : "")\n"
        )
        let owned = try db.prepare(
            """
            SELECT license_key, last_error FROM work WHERE state = 'rejected' AND last_error LIKE 'already assigned to another owner%' ORDER BY id LIMIT 1
            """)
        if try owned.step() {
            output(
                "for example, a rejection that names the key's current owner:\n  \(owned.string(0) ?? "")  \(owned.string(1) ?? "")\n"
            )
        }
        output(
            """

            database: \(databasePath)
            try:
              \(tool) status  --db \(databasePath)
              \(tool) report  --db \(databasePath) --split \(state)/report
              \(tool) history --db \(databasePath) \(keys.first ?? "KEY")
              \(tool) audit   --db \(databasePath) --public-key \(sandbox.publicKeyPath)

            """)
        // The demo succeeded when the pipeline ran to its end: rows that end failed or
        // uncertain are part of what it shows. Anything else (a stop, an error) is passed on.
        return status == .someFailed ? .ok : status
    }

    private static func percent(_ probability: Double) -> String { "\(Int((probability * 100).rounded()))%" }

    /// The path this binary was started as, so that the suggested commands can be pasted.
    static var tool: String {
        let invoked = CommandLine.arguments.first ?? "keyassign"
        return invoked.contains("/") ? URL(fileURLWithPath: invoked).standardizedFileURL.path : invoked
    }

    /// Which imported keys the demo's server knows: every fifth is unknown (→ 801), and two
    /// of the known ones are assigned in advance (→ 801); the rest are assignable (→ 800).
    struct InventoryPlan {
        var inventory: [String] = []
        var unknown: [String] = []
        var assignedInAdvance: [String] = []

        init(keys: [String]) {
            for (index, key) in keys.enumerated() {
                if index % 5 == 4 {
                    unknown.append(key)
                } else {
                    inventory.append(key)
                    if index % 5 == 1 && assignedInAdvance.count < 2 { assignedInAdvance.append(key) }
                }
            }
        }
    }

    /// `samples/` in the current directory (how `swift run keyassign demo` is run from the
    /// package), else the one in the package the binary was built in (`.build/<config>/keyassign`).
    static func locateSamples(_ given: String?) throws -> String {
        var candidates: [String] = []
        if let given {
            candidates = [given]
        } else {
            candidates.append(FileManager.default.currentDirectoryPath + "/samples")
            let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
            var directory = executable.deletingLastPathComponent()
            for _ in 0..<4 {
                candidates.append(directory.path + "/samples")
                directory = directory.deletingLastPathComponent()
            }
        }
        for candidate in candidates {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), isDirectory.boolValue {
                return candidate
            }
        }
        throw KeyAssignError(
            .dataError,
            "no samples directory found (looked in \(candidates.joined(separator: ", "))); "
                + "run the demo from the keyassign package, or pass --samples DIR")
    }

    static func makeTemporaryDirectory() throws -> String {
        var template = Array((FileManager.default.temporaryDirectory.path + "/keyassign-demo-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw KeyAssignError(.ioError, "cannot create a temporary directory: \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }
}
