import ArgumentParser
import Dispatch
import Foundation
import KeyAssign

struct SandboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Run a local license server that speaks assign-license-key, signs its replies and injects faults.",
        discussion: """
        Prints its base URL on stdout and writes the bound port to DIR/port once it listens. \
        DIR also holds private.pem, public.pem (give it to `--public-key`), api-key (0600, \
        unless --api-key-file is given), assignments.jsonl and, with --generate-keys, keys.txt. \
        GET /__sandbox/ledger shows what it saw. Runs until SIGINT or SIGTERM.
        Fault probabilities P are numbers from 0 to 1 (0.05 = 5% of requests).
        """
    )

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on; 0 picks a free one.") var port = 0
    @Option(name: .customLong("state-dir"), help: "Directory for keys, the API key, the port and assignments.")
    var stateDir: String
    @Option(help: "Inventory file: one license key per line.") var keys: String?
    @Option(name: .customLong("generate-keys"), help: "Generate N license keys into DIR/keys.txt (reused if it exists).")
    var generateKeys: Int?
    @Option(name: .customLong("api-key-file"), help: "File holding the API key to accept (default: DIR/api-key).")
    var apiKeyFile: String?
    @Option(help: "Server-side rate limit, requests per second (needs --burst).") var rate: Double?
    @Option(help: "Server-side burst size for --rate.") var burst: Int?
    @Option(help: "Delay every reply by MS or by MIN-MAX milliseconds.") var latency: String?
    @Option(name: .customLong("fail-5xx"), help: "Probability P (0-1) of a 503 without processing.") var fail5xx: Double = 0
    @Option(name: .customLong("fail-429"), help: "Probability P (0-1) of a 429 without processing.") var fail429: Double = 0
    @Option(name: .customLong("drop-before"), help: "Probability P (0-1) of closing the connection without processing.")
    var dropBefore: Double = 0
    @Option(name: .customLong("drop-after"), help: "Probability P (0-1) of processing (assigning), then closing without a reply.")
    var dropAfter: Double = 0
    @Option(name: .customLong("bad-signature"), help: "Probability P (0-1) of a reply with one signature bit flipped.")
    var badSignature: Double = 0
    @Option(help: "Probability P (0-1) of a signed reply whose timestamp is one hour old.") var stale: Double = 0
    @Option(help: "Seed for the fault generator (default: random, printed on stderr).") var seed: UInt64?

    func validate() throws {
        if keys != nil && generateKeys != nil {
            throw ValidationError("give either --keys or --generate-keys, not both")
        }
        if (rate == nil) != (burst == nil) {
            throw ValidationError("--rate and --burst go together")
        }
    }

    func run() throws {
        let inventory: SandboxConfiguration.Inventory =
            keys.map { .file($0) } ?? .generate(generateKeys ?? 0)
        var configuration = SandboxConfiguration(stateDirectory: stateDir, inventory: inventory)
        configuration.host = host
        configuration.port = port
        configuration.apiKeyFile = apiKeyFile
        if let rate, let burst { configuration.rateLimit = .init(rate: rate, burst: burst) }
        configuration.faults.fail5xx = fail5xx
        configuration.faults.fail429 = fail429
        configuration.faults.dropBefore = dropBefore
        configuration.faults.dropAfter = dropAfter
        configuration.faults.badSignature = badSignature
        configuration.faults.stale = stale
        configuration.faults.seed = seed
        do {
            if let latency { configuration.faults.latency = try SandboxConfiguration.Latency.parse(latency) }
            try SandboxRunner.run(configuration)
        } catch let error as KeyAssignError {
            FileHandle.standardError.write(Data("keyassign sandbox: \(error.message)\n".utf8))
            throw ExitCode(error.status.rawValue)
        }
    }
}
