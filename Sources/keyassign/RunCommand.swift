import ArgumentParser
import KeyAssign

/// The options `run` and `sync` share.
struct RunArguments: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The license server's base URL; keyassign appends /api/v1/assign-license-key (a URL already ending in /api/v1 is accepted).", valueName: "URL"))
    var server: String

    @Option(name: .customLong("public-key"), help: ArgumentHelp("A public key (PEM) replies may be signed with: NAME=PATH, or PATH for the name 'global'. Repeat for several.", valueName: "[NAME=]PATH"))
    var publicKeys: [String] = []

    @OptionGroup var database: DatabaseOption

    @Option(name: .customLong("api-key-file"), help: ArgumentHelp("Read the API key from this file (one line). Default: $KEYASSIGN_API_KEY. There is no flag for the key itself: argv is visible to every user.", valueName: "PATH"))
    var apiKeyFile: String?

    @Option(name: .long, help: ArgumentHelp("Requests per second across all senders; 0 = unlimited.", valueName: "R"))
    var rate: Double = 10

    @Option(name: .long, help: ArgumentHelp("The server's burst for --rate. keyassign sends at most N-1 at once and keeps one in reserve, so that network jitter cannot make requests arrive faster than a server with the same burst allows. A server burst of 1 cannot absorb jitter: use 2 or more.", valueName: "N"))
    var burst: Int = 2

    @Option(name: .long, help: ArgumentHelp("Requests in flight at most.", valueName: "N"))
    var concurrency: Int = 8

    @Option(name: .customLong("max-attempts"), help: ArgumentHelp("Attempts per row before it is marked failed (429s do not count).", valueName: "N"))
    var maxAttempts: Int = 5

    @Option(name: .long, help: ArgumentHelp("Seconds per request; also how long a first SIGINT/SIGTERM waits for requests in flight.", valueName: "SECONDS"))
    var timeout: Double = 30

    @Option(name: .customLong("max-clock-skew"), help: ArgumentHelp("Refuse replies whose signed timestamp is further than this from local time.", valueName: "SECONDS"))
    var maxClockSkew: Double = 300

    @Option(name: .customLong("max-wait"), help: ArgumentHelp("Wait at most this long in total for scheduled retries; rows due later stay 'retry' for the next run.", valueName: "SECONDS"))
    var maxWait: Double = 300

    @Option(name: .long, help: ArgumentHelp("Request body encoding: form (application/x-www-form-urlencoded, as documented) or json.", valueName: "form|json"))
    var body: String = "form"

    @Option(name: .customLong("backoff-base"), help: ArgumentHelp("Retry backoff: the first delay's ceiling; each retry doubles it (full jitter).", valueName: "SECONDS"))
    var backoffBase: Double = 1

    @Option(name: .customLong("backoff-cap"), help: ArgumentHelp("Retry backoff: the largest delay.", valueName: "SECONDS"))
    var backoffCap: Double = 60

    @Option(name: .customLong("summary-json"), help: ArgumentHelp("Write the run's summary as JSON to this file.", valueName: "FILE"))
    var summaryJSON: String?

    @Flag(name: .customLong("allow-insecure-http"), help: "Allow plain http to a host that is not loopback (the API key then crosses the network in clear text).")
    var allowInsecureHTTP = false

    @Option(name: .customLong("ca-file"), help: ArgumentHelp("Trust the server's certificate if this CA (PEM) signed it, instead of the system trust store.", valueName: "PATH"))
    var caFile: String?

    @Flag(name: .long, help: "No progress and no summary on stderr; only warnings and errors.")
    var quiet = false

    @Flag(name: .customLong("no-reconcile"), help: "Do not settle rows from the server's signed key listing (GET /api/v1/get-license-keys): recovered rows are sent again and uncertain rows stay uncertain, as before.")
    var noReconcile = false

    @Option(name: .customLong("max-listing-bytes"), help: ArgumentHelp("Read at most this much of the key listing; a longer one is skipped with a warning.", valueName: "BYTES"))
    var maxListingBytes: Int = ReconcileOptions.defaultMaxListingBytes

    func validate() throws {
        if publicKeys.isEmpty { throw ValidationError("give at least one --public-key [NAME=]PATH") }
        if BodyEncoding(rawValue: body) == nil { throw ValidationError("--body must be form or json") }
    }

    /// Builds the runner's options; configuration errors come back as a status to exit with.
    func runOptions() -> Result<RunOptions, KeyAssignError> {
        do {
            try RunSetup.checkCAFile(caFile)
            let endpoint = try ServerEndpoint(base: server, allowInsecureHTTP: allowInsecureHTTP)
            let apiKey = try RunSetup.apiKey(file: apiKeyFile)
            var options = RunOptions(databasePath: database.path, endpoint: endpoint, apiKey: apiKey)
            options.rate = rate
            options.burst = burst
            options.concurrency = concurrency
            options.maxAttempts = maxAttempts
            options.timeout = timeout
            options.maxClockSkew = maxClockSkew
            options.maxWait = maxWait
            options.body = BodyEncoding(rawValue: body) ?? .form
            options.backoffBase = backoffBase
            options.backoffCap = backoffCap
            options.summaryJSONPath = summaryJSON
            options.caFile = caFile
            options.progress = quiet ? .quiet : .automatic
            options.handleSignals = true
            options.reconcile = !noReconcile
            options.maxListingBytes = maxListingBytes
            try options.validate()
            return .success(options)
        } catch let error as KeyAssignError {
            return .failure(error)
        } catch {
            return .failure(KeyAssignError(.config, "\(error)"))
        }
    }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Send the queued rows to the license server, verify every reply, record every outcome.",
        discussion: """
            Rows move pending → in_flight → assigned | rejected | uncertain | retry | failed \
            (see docs/states.md). A run works until nothing is due, waiting up to --max-wait \
            for scheduled retries. One run per database.

            Exit status: 0 every row assigned or rejected; 1 some rows failed, uncertain or \
            left in retry; 3 stopped by an auth or access refusal (codes 100-103, 150, HTTP \
            401/403); 64 usage; 74 database failure; 75 another run holds the database; \
            78 bad configuration; 130/143 interrupted by SIGINT/SIGTERM.
            """
    )

    @OptionGroup var arguments: RunArguments

    func run() throws {
        let logger = RunSetup.logger(quiet: arguments.quiet)
        switch arguments.runOptions() {
        case .failure(let error):
            logger.error("\(error.message)")
            throw ExitCode(error.status.rawValue)
        case .success(let options):
            let status = RunSetup.execute(options, publicKeys: arguments.publicKeys, logger: logger)
            throw ExitCode(status.rawValue)
        }
    }
}
