import ArgumentParser
import KeyAssign

/// `--state` values reconcile accepts; `--help` lists them.
enum ReconcileStateArgument: String, ExpressibleByArgument, CaseIterable {
    case uncertain, rejected, retry, assigned

    var state: WorkState {
        switch self {
        case .uncertain: .uncertain
        case .rejected: .rejected
        case .retry: .retry
        case .assigned: .assigned
        }
    }
}

struct ReconcileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Settle uncertain rows and explain rejected ones from the server's signed key listing.",
        discussion: """
            Fetches GET /api/v1/get-license-keys once, verifies it like any reply (signature, \
            payload equal to response, freshness within --max-clock-skew, code 730) and keeps it \
            as evidence. Then each selected row is settled by the rules in docs/states.md: the \
            key held by this buyer -> assigned; by another owner -> rejected naming the owner; \
            available -> an uncertain row goes back to retry (only if the listing was taken after \
            its last attempt could still be processed); another status -> rejected; not listed -> \
            a rejected row is unknown to the server, but an uncertain row stays uncertain ("not in \
            the server's listing": absence proves nothing for a request that may have been \
            delivered). --state assigned confirms assigned rows by key and email: the key \
            available -> retry (sent again); another owner -> rejected, "changed after our \
            assignment". Sends no assign request.

            One line per row on stdout: key, change, rule, reason. Exit status 0 when every \
            selected row was settled; 1 when some must wait for a later listing, are not listed, \
            or the listing is unusable (unsigned, not code 730, over --max-listing-bytes, 404, \
            unreachable); 4 when the listing contradicts rows recorded assigned; 64 usage; 74 \
            database failure; 75 a run holds the database; 78 bad configuration, or a listing \
            that fails signature verification or is stale (a wrong --public-key, a wrong clock).
            """
    )

    @Option(name: .long, help: ArgumentHelp("The license server's base URL (as for run).", valueName: "URL"))
    var server: String

    @Option(
        name: .customLong("public-key"),
        help: ArgumentHelp(
            "A public key (PEM) the listing may be signed with: NAME=PATH, or PATH for 'global'. Repeatable.",
            valueName: "[NAME=]PATH"))
    var publicKeys: [String] = []

    @OptionGroup var database: DatabaseOption

    @Option(
        name: .customLong("api-key-file"),
        help: ArgumentHelp(
            "Read the API key from this file (one line). Default: $KEYASSIGN_API_KEY.", valueName: "PATH"))
    var apiKeyFile: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Rows in this state (repeatable): uncertain, rejected, retry, assigned. Default: uncertain and rejected.",
            valueName: "S"))
    var state: [ReconcileStateArgument] = []

    @Flag(name: .customLong("dry-run"), help: "Print what would change; store and change nothing.")
    var dryRun = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The --timeout the runs used, for runs that did not record theirs (the race rule).", valueName: "SECONDS"))
    var timeout: Double = 30

    @Option(
        name: .customLong("max-clock-skew"),
        help: ArgumentHelp(
            "Refuse a listing whose signed timestamp is further than this from local time.", valueName: "SECONDS"))
    var maxClockSkew: Double = 300

    @Option(
        name: .customLong("listing-timeout"),
        help: ArgumentHelp(
            "How long the key listing may take in all (\(FlagRange.listingTimeout.text)); a listing slower than \(ListingClient.lowSpeedBytesPerSecond) bytes/s for \(ListingClient.lowSpeedSeconds) s is cut sooner.",
            valueName: "SECONDS"))
    var listingTimeout: Double = ListingClient.defaultListingTimeout
    @Option(
        name: .customLong("max-listing-bytes"),
        help: ArgumentHelp("Read at most this much of the listing; a longer one is refused.", valueName: "BYTES"))
    var maxListingBytes: Int = ReconcileOptions.defaultMaxListingBytes

    @Option(
        name: .customLong("max-attempts"),
        help: ArgumentHelp(
            "Accepted for compatibility; --max-attempts bounds one run, so an uncertain row whose key is available always goes back to retry.",
            valueName: "N"))
    var maxAttempts: Int = 5

    @Option(
        name: .customLong("listing-key"),
        help: ArgumentHelp(
            "The key name the listing must be signed with; a listing signed by any other key is refused.",
            valueName: "NAME"))
    var listingKey: String = ListingVerifier.defaultListingKeyName

    @Flag(name: .customLong("allow-insecure-http"), help: "Allow plain http to a host that is not loopback.")
    var allowInsecureHTTP = false

    @Option(
        name: .customLong("ca-file"),
        help: ArgumentHelp("Trust the server's certificate if this CA (PEM) signed it.", valueName: "PATH"))
    var caFile: String?

    @Flag(name: .long, help: "Only warnings and errors on stderr.")
    var quiet = false

    func validate() throws {
        if publicKeys.isEmpty { throw ValidationError("give at least one --public-key [NAME=]PATH") }
        try checkFlag(.timeout, timeout)
        try checkFlag(.maxClockSkew, maxClockSkew)
        try checkFlag(.maxListingBytes, maxListingBytes)
        try checkFlag(.listingTimeout, listingTimeout)
        try checkFlag(.maxAttempts, maxAttempts)
    }

    func run() throws {
        let logger = RunSetup.logger(quiet: quiet)
        try exitingWithStatus {
            try RunSetup.checkCAFile(caFile)
            let endpoint = try ServerEndpoint(base: server, allowInsecureHTTP: allowInsecureHTTP)
            let apiKey = try RunSetup.apiKey(file: apiKeyFile)
            var options = ReconcileOptions(databasePath: database.path, endpoint: endpoint, apiKey: apiKey)
            options.timeout = timeout
            options.maxClockSkew = maxClockSkew
            options.maxListingBytes = maxListingBytes
            options.listingTimeout = listingTimeout
            options.caFile = caFile
            options.maxAttempts = maxAttempts
            options.listingKeyName = listingKey
            options.dryRun = dryRun
            if !state.isEmpty { options.states = state.map(\.state) }
            let ring = try KeyRing(specs: publicKeys)
            return try ReconcileJob.run(options, keyRing: ring, logger: logger) { StandardStreams.out($0) }
        }
    }
}
