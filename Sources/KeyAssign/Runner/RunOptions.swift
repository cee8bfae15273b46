/// Everything `keyassign run` needs, already validated. Defaults are the documented ones.
public struct RunOptions: Sendable {
    public var databasePath: String
    public var endpoint: ServerEndpoint
    /// From `$KEYASSIGN_API_KEY` or `--api-key-file`; never logged, stored or reported.
    public var apiKey: String
    /// Requests per second across all senders; 0 = unlimited.
    public var rate: Double = 10
    /// The server's burst: keyassign sends at most `burst − 1` back-to-back and keeps one
    /// token in reserve for arrival jitter (see `TokenBucket`). 2 by default, since a server
    /// burst of 1 cannot absorb any jitter.
    public var burst: Int = 2
    /// `--rate N/WINDOW`: quotas that must all hold, on top of `rate` (see `RateLimits`).
    public var rateLimits: [RateLimit] = []
    public var concurrency: Int = 8
    public var maxAttempts: Int = 5
    /// Per-request timeout, and how long a first SIGINT/SIGTERM waits for requests in flight.
    public var timeout: Double = 30
    /// Live replies whose signed timestamp is further than this from local time are refused.
    public var maxClockSkew: Double = 300
    /// How long the run may wait, in total, for anything but pacing: a 429 pause, the next probe
    /// of an unreachable server, scheduled retries to come due (`WaitBudget`).
    public var maxWait: Double = 300
    public var body: BodyEncoding = .form
    /// PEM trust anchors for the server's certificate (a private CA); nil = the system store.
    public var caFile: String?
    public var backoffBase: Double = 1
    public var backoffCap: Double = 60
    public var summaryJSONPath: String?
    public var progress: ProgressMode = .automatic
    /// Settle rows from the server's signed key listing (`--no-reconcile` turns it off).
    public var reconcile: Bool = true
    /// `--listing-timeout`: the key listing's whole transfer (its waiting for the server to
    /// begin answering counts against `maxWait`; see `ListingClient`).
    public var listingTimeout: Double = ListingClient.defaultListingTimeout
    /// `--max-listing-bytes`: a longer listing is not read (and the run goes on without it).
    public var maxListingBytes: Int = ReconcileOptions.defaultMaxListingBytes
    /// The key name the key listing must be signed with (`--listing-key`).
    public var listingKeyName = ListingVerifier.defaultListingKeyName
    /// Install SIGINT/SIGTERM handlers (the CLI does; an embedding program may not want it).
    public var handleSignals: Bool = false

    public init(databasePath: String, endpoint: ServerEndpoint, apiKey: String) {
        self.databasePath = databasePath
        self.endpoint = endpoint
        self.apiKey = apiKey
    }

    /// The ranges are `FlagRange`'s, the same the command line checks.
    public func validate() throws {
        try FlagRange.rate.check(rate)
        try FlagRange.burst.check(burst)
        for limit in rateLimits
        where !(1...RateLimit.maxCount).contains(limit.count) || !RateLimit.windowRange.contains(limit.window) {
            throw KeyAssignError(
                .usage,
                "--rate \(limit.count)/\(limit.window)s: the count must be from 1 to \(RateLimit.maxCount) and the window from 1 ms to 31 days"
            )
        }
        try FlagRange.concurrency.check(concurrency)
        try FlagRange.maxAttempts.check(maxAttempts)
        try FlagRange.timeout.check(timeout)
        try FlagRange.maxClockSkew.check(maxClockSkew)
        try FlagRange.maxWait.check(maxWait)
        try FlagRange.backoffBase.check(backoffBase)
        try FlagRange.backoffCap.check(backoffCap)
        if backoffBase > backoffCap { throw KeyAssignError(.usage, "--backoff-base must not exceed --backoff-cap") }
        try FlagRange.maxListingBytes.check(maxListingBytes)
        try FlagRange.listingTimeout.check(listingTimeout)
    }
}

/// How progress is shown on stderr.
public enum ProgressMode: Sendable {
    /// A live line on a TTY, else a log line every 10 s.
    case automatic
    case liveLine
    case periodicLog
    /// `--quiet`: only warnings, errors and nothing else.
    case quiet
}
