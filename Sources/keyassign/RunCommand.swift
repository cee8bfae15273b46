import ArgumentParser
import Foundation
import KeyAssign

/// The options `run` and `sync` share.
struct RunArguments: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The license server's base URL; keyassign appends /api/v1/assign-license-key (a URL already ending in /api/v1 is accepted).",
            valueName: "URL"))
    var server: String

    @Option(
        name: .customLong("public-key"),
        help: ArgumentHelp(
            "A public key (PEM) replies may be signed with: NAME=PATH, or PATH for the name 'global'. Repeat for several; several may share a NAME (two products' keys, both 'product').",
            valueName: "[NAME=]PATH"))
    var publicKeys: [String] = []

    @OptionGroup var database: DatabaseOption

    @Option(
        name: .customLong("api-key-file"),
        help: ArgumentHelp(
            "Read the API key from this file (one line). Default: $KEYASSIGN_API_KEY. There is no flag for the key itself: argv is visible to every user.",
            valueName: "PATH"))
    var apiKeyFile: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Requests per second across all senders; 0 = unlimited (\(FlagRange.rate.text); default 10). Or a quota N/WINDOW that no window of that length may exceed, repeatable, all kept: --rate 10/min --rate 100/hour --rate 500/day (units s, min, hour, day; 20/10s). A quota that reopens only after --max-wait ends the run with exit 10.",
            valueName: "R|N/WINDOW"))
    var rate: [String] = []

    /// The plain `--rate R` (the last one given, as before quotas; 10 when none is) and the
    /// quotas, parsed.
    func rates() throws -> (perSecond: Double, quotas: [RateLimit]) {
        var perSecond: Double?
        var quotas: [RateLimit] = []
        for text in rate {
            switch try RateLimit.parseFlag(text) {
            case .perSecond(let value):
                perSecond = value
            case .quota(let limit):
                quotas.append(limit)
            }
        }
        return (perSecond ?? 10, quotas)
    }

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The server's burst for --rate. keyassign sends at most N-1 at once and keeps one in reserve, so that network jitter cannot make requests arrive faster than a server with the same burst allows. A server burst of 1 cannot absorb jitter: use 2 or more (\(FlagRange.burst.text)).",
            valueName: "N"))
    var burst: Int = 2

    @Option(
        name: .long, help: ArgumentHelp("Requests in flight at most (\(FlagRange.concurrency.text)).", valueName: "N"))
    var concurrency: Int = 8

    @Option(
        name: .customLong("max-attempts"),
        help: ArgumentHelp(
            "Attempts per row in this run; then a row that may have reached the server is uncertain (the key listing settles it), any other failed, and the next run tries again unless the refusal was final (429s, and requests that never left, do not count; \(FlagRange.maxAttempts.text)).",
            valueName: "N"))
    var maxAttempts: Int = 5

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Seconds per request; also how long a first SIGINT/SIGTERM waits for requests in flight (\(FlagRange.timeout.text)).",
            valueName: "SECONDS"))
    var timeout: Double = 30

    @Option(
        name: .customLong("max-clock-skew"),
        help: ArgumentHelp(
            "Refuse replies whose signed timestamp is further than this from local time (\(FlagRange.maxClockSkew.text)).",
            valueName: "SECONDS"))
    var maxClockSkew: Double = 300

    @Option(
        name: .customLong("max-wait"),
        help: ArgumentHelp(
            "Wait at most this long in total: for 429 pauses, for an unreachable server to come back, for scheduled retries. A wait that does not fit ends the run; its rows stay for the next run (\(FlagRange.maxWait.text)).",
            valueName: "SECONDS"))
    var maxWait: Double = 300

    @Option(
        name: .long, help: "Request body encoding: form (application/x-www-form-urlencoded, as documented) or json.")
    var body: BodyEncoding = .form

    @Option(
        name: .customLong("backoff-base"),
        help: ArgumentHelp(
            "Retry backoff: the first delay's ceiling; each retry doubles it (full jitter; \(FlagRange.backoffBase.text)).",
            valueName: "SECONDS"))
    var backoffBase: Double = 1

    @Option(
        name: .customLong("backoff-cap"),
        help: ArgumentHelp("Retry backoff: the largest delay (\(FlagRange.backoffCap.text)).", valueName: "SECONDS"))
    var backoffCap: Double = 60

    @Option(
        name: .customLong("summary-json"),
        help: ArgumentHelp("Write the run's summary as JSON to this file.", valueName: "FILE"))
    var summaryJSON: String?

    @Option(
        name: .customLong("metrics-file"),
        help: ArgumentHelp(
            "Write Prometheus metrics for node_exporter's textfile collector to this file (atomically) on every exit, failures included.",
            valueName: "FILE"))
    var metricsFile: String?

    @Flag(
        name: .customLong("allow-insecure-http"),
        help: "Allow plain http to a host that is not loopback (the API key then crosses the network in clear text).")
    var allowInsecureHTTP = false

    @Option(
        name: .customLong("ca-file"),
        help: ArgumentHelp(
            "Trust the server's certificate if this CA (PEM) signed it, instead of the system trust store.",
            valueName: "PATH"))
    var caFile: String?

    @Flag(name: .long, help: "No progress and no summary on stderr; only warnings and errors.")
    var quiet = false

    @Flag(
        name: .customLong("no-reconcile"),
        help:
            "Do not settle rows from the server's signed key listing (GET /api/v1/get-license-keys): recovered rows are sent again and uncertain rows stay uncertain, as before."
    )
    var noReconcile = false

    @Option(
        name: .customLong("listing-timeout"),
        help: ArgumentHelp(
            "How long the key listing may take in all (\(FlagRange.listingTimeout.text)); a listing slower than \(ListingClient.lowSpeedBytesPerSecond) bytes/s for \(ListingClient.lowSpeedSeconds) s is cut sooner. Waiting for the server to begin answering counts against --max-wait (at least --timeout).",
            valueName: "SECONDS"))
    var listingTimeout: Double = ListingClient.defaultListingTimeout
    @Option(
        name: .customLong("max-listing-bytes"),
        help: ArgumentHelp(
            "Read at most this much of the key listing; a longer one is skipped with a warning.", valueName: "BYTES"))
    var maxListingBytes: Int = ReconcileOptions.defaultMaxListingBytes

    @Option(
        name: .customLong("listing-key"),
        help: ArgumentHelp(
            "The key name the key listing must be signed with; a listing signed by any other key is refused.",
            valueName: "NAME"))
    var listingKey: String = ListingVerifier.defaultListingKeyName

    func validate() throws {
        if publicKeys.isEmpty { throw ValidationError("give at least one --public-key [NAME=]PATH") }
        do {
            _ = try rates()
        } catch let error as KeyAssignError {
            throw ValidationError(error.message)
        }
        try checkFlag(.burst, burst)
        try checkFlag(.concurrency, concurrency)
        try checkFlag(.maxAttempts, maxAttempts)
        try checkFlag(.timeout, timeout)
        try checkFlag(.maxClockSkew, maxClockSkew)
        try checkFlag(.maxWait, maxWait)
        try checkFlag(.backoffBase, backoffBase)
        try checkFlag(.backoffCap, backoffCap)
        try checkFlag(.maxListingBytes, maxListingBytes)
        try checkFlag(.listingTimeout, listingTimeout)
        if backoffBase > backoffCap {
            throw ValidationError("--backoff-base \(backoffBase) must not exceed --backoff-cap \(backoffCap)")
        }
    }

    /// Builds the runner's options; configuration errors come back as a status to exit with.
    func runOptions() -> Result<RunOptions, KeyAssignError> {
        do {
            // Output paths first, before any lock: a FIFO there is refused at once (exit 78).
            try RunSetup.checkOutputPaths(["--summary-json": summaryJSON, "--metrics-file": metricsFile])
            try RunSetup.checkCAFile(caFile)
            let endpoint = try ServerEndpoint(base: server, allowInsecureHTTP: allowInsecureHTTP)
            let apiKey = try RunSetup.apiKey(file: apiKeyFile)
            if let apiKeyFile,
                let warning = APIKeyFilePermissions.warning(
                    for: apiKeyFile, environment: ProcessInfo.processInfo.environment)
            {
                StandardStreams.error("warning: " + warning)
            }
            var options = RunOptions(databasePath: database.path, endpoint: endpoint, apiKey: apiKey)
            (options.rate, options.rateLimits) = try rates()
            options.burst = burst
            options.concurrency = concurrency
            options.maxAttempts = maxAttempts
            options.timeout = timeout
            options.maxClockSkew = maxClockSkew
            options.maxWait = maxWait
            options.body = body
            options.backoffBase = backoffBase
            options.backoffCap = backoffCap
            options.summaryJSONPath = summaryJSON
            options.caFile = caFile
            options.progress = quiet ? .quiet : .automatic
            options.handleSignals = true
            options.reconcile = !noReconcile
            options.maxListingBytes = maxListingBytes
            options.listingKeyName = listingKey
            options.listingTimeout = listingTimeout
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
            in total for 429 pauses, an unreachable server and scheduled retries. One run per \
            database.

            Exit status: 0 every row assigned or rejected; 1 some rows failed, uncertain or \
            left in retry or pending (--max-wait ran out); 3 stopped by an auth or access \
            refusal (codes 100-103, 150, or unsigned 401/403 to every request); 10 the \
            server's quota is spent until after --max-wait (a --rate N/WINDOW, a 429's \
            Retry-After, X-RateLimit-Reset): not a failure, the rows stay pending for the \
            next run; 64 usage; \
            69 the server stayed unreachable for --max-wait; 74 database failure; 75 another \
            run holds the database; 78 bad configuration (the server's certificate refused \
            included); 130/143 interrupted by SIGINT/SIGTERM.
            """
    )

    @OptionGroup var arguments: RunArguments

    func run() throws {
        let started = Timestamps.monotonic()
        let logger = RunSetup.logger(quiet: arguments.quiet)
        let result: (status: ExitStatus, summary: RunSummary?)
        switch arguments.runOptions() {
        case .failure(let error):
            logger.error("\(error.message)")
            result = (error.status, nil)
        case .success(let options):
            result = RunSetup.executeWithSummary(options, publicKeys: arguments.publicKeys, logger: logger)
        }
        let status = MetricsFile.finish(
            path: arguments.metricsFile, status: result.status, summary: result.summary,
            databasePath: arguments.database.path, startedAt: started, logger: logger)
        throw ExitCode(status.rawValue)
    }
}
