import ArgumentParser
import Dispatch
import Foundation
import KeyAssign
import KeyAssignSandbox

extension SandboxConfiguration.ListingMode: ExpressibleByArgument {}

struct SandboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Run a local license server that speaks assign-license-key, signs its replies and injects faults.",
        discussion: """
            Prints its base URL on stdout and writes the bound port to DIR/port once it listens. \
            DIR also holds private.pem, public.pem (the public key clients verify replies with), api-key (0600, \
            unless --api-key-file is given), assignments.jsonl and, with --generate-keys, keys.txt. \
            GET /__sandbox/ledger shows what it saw. Runs until SIGINT or SIGTERM.
            Fault probabilities P are numbers from 0 to 1 (0.05 = 5% of requests).
            """
    )

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on; 0 picks a free one (\(FlagRange.port.text)).") var port = 0
    @Option(
        name: .customLong("state-dir"),
        help: ArgumentHelp("Directory for keys, the API key, the port and assignments.", valueName: "DIR"))
    var stateDir: String
    @Option(help: ArgumentHelp("Inventory file: one license key per line.", valueName: "FILE")) var keys: String?
    @Option(
        name: .customLong("generate-keys"),
        help: ArgumentHelp(
            "Generate N license keys into DIR/keys.txt (reused if it exists; \(FlagRange.generateKeys.text)).",
            valueName: "N"))
    var generateKeys: Int?
    @Option(
        name: .customLong("api-key-file"),
        help: ArgumentHelp("File holding the API key to accept (default: DIR/api-key).", valueName: "FILE"))
    var apiKeyFile: String?
    @Option(
        help: ArgumentHelp(
            "Server-side rate limit, requests per second (needs --burst; \(FlagRange.sandboxRate.text)).",
            valueName: "R")) var rate: Double?
    @Option(help: ArgumentHelp("Server-side burst size for --rate (\(FlagRange.sandboxBurst.text)).", valueName: "B"))
    var burst: Int?
    @Option(
        help: ArgumentHelp(
            "A quota in fixed windows, as Laravel's throttle keeps them: N requests per WINDOW, the window opening at the first request after the last one expired (30/hour, 500/day, 5/60s). Repeatable; all are kept. Replies carry X-RateLimit-Limit, -Remaining and -Reset; a full window answers 429 with Retry-After.",
            valueName: "N/WINDOW"))
    var quota: [String] = []
    @Option(
        help: ArgumentHelp(
            "Delay every reply by MS or by MIN-MAX milliseconds (each \(FlagRange.latency.text)).",
            valueName: "MS|MIN-MAX")) var latency: String?
    @Option(
        name: .customLong("fail-5xx"),
        help: ArgumentHelp("Probability P (0-1) of a 503 without processing.", valueName: "P")) var fail5xx: Double = 0
    @Option(
        name: .customLong("fail-429"),
        help: ArgumentHelp("Probability P (0-1) of a 429 without processing.", valueName: "P")) var fail429: Double = 0
    @Option(
        name: .customLong("drop-before"),
        help: ArgumentHelp("Probability P (0-1) of closing the connection without processing.", valueName: "P"))
    var dropBefore: Double = 0
    @Option(
        name: .customLong("drop-after"),
        help: ArgumentHelp(
            "Probability P (0-1) of processing (assigning), then closing without a reply.", valueName: "P"))
    var dropAfter: Double = 0
    @Option(
        name: .customLong("bad-signature"),
        help: ArgumentHelp("Probability P (0-1) of a reply with one signature bit flipped.", valueName: "P"))
    var badSignature: Double = 0
    @Option(
        help: ArgumentHelp("Probability P (0-1) of a signed reply whose timestamp is one hour old.", valueName: "P"))
    var stale: Double = 0
    @Option(
        name: .customLong("string-code"),
        help: ArgumentHelp(
            "Probability P (0-1) of a signed reply whose code is a JSON string (\"code\":\"800\"), as PHP writes it.",
            valueName: "P"))
    var stringCode: Double = 0
    @Option(
        name: .customLong("echo-error"),
        help: ArgumentHelp(
            "Probability P (0-1) of a 500 debug page echoing the request's headers and body (the API key too), without processing.",
            valueName: "P"))
    var echoError: Double = 0
    @Option(
        name: .customLong("key-name"),
        help: ArgumentHelp(
            "What replies say in private_key_used: global, or product to act as a product with its own key pair (DIR/private.pem signs either way).",
            valueName: "NAME"))
    var keyName = "global"
    @Flag(inversion: .prefixedNo, help: "Write / as \\/ in reply JSON, as PHP's json_encode does.")
    var escapeSlashes = true
    @Option(
        name: .customLong("undocumented-code"),
        help: ArgumentHelp(
            "Probability P (0-1) of processing (assigning), then answering a signed but undocumented code 899.",
            valueName: "P"))
    var undocumentedCode: Double = 0
    @Option(
        name: .customLong("retry-after"),
        help: ArgumentHelp(
            "Retry-After of the 429s --fail-429 injects: seconds, or 'none' for no header (nor a retry_after field).",
            valueName: "SECONDS|none"))
    var retryAfter: String = "1"
    @Option(
        name: .customLong("waf-block"),
        help: ArgumentHelp(
            "Act as a web application firewall: requests whose owner_name or email matches this regular expression (case-insensitive; '.*' matches all) get an unsigned 403 HTML page and are not processed.",
            valueName: "REGEX"))
    var wafBlock: String?
    @Option(
        name: .customLong("late-reply"),
        help: ArgumentHelp(
            "Probability P (0-1) of processing (assigning), then holding the signed reply back for --late-reply-delay.",
            valueName: "P"))
    var lateReply: Double = 0
    @Option(
        name: .customLong("late-reply-delay"),
        help: ArgumentHelp(
            "How long --late-reply holds a reply back, in milliseconds (\(FlagRange.lateReplyDelay.text)).",
            valueName: "MS"))
    var lateReplyDelay = 0
    @Option(
        name: .customLong("listing-delay"),
        help: ArgumentHelp(
            "Hold the key listing back this long before answering, in milliseconds (\(FlagRange.listingDelay.text)).",
            valueName: "MS"))
    var listingDelay = 0
    @Option(
        name: .customLong("listing-omit"),
        help: ArgumentHelp(
            "Share S (0-1) of the keys the listing leaves out, the same keys every time (a scoped, paginated or truncated listing).",
            valueName: "S"))
    var listingOmit: Double = 0
    @Option(help: ArgumentHelp("Seed for the fault generator (default: random, printed on stderr).", valueName: "N"))
    var seed: UInt64?
    @Option(
        help: ArgumentHelp(
            "How GET /api/v1/get-license-keys answers: signed (the real state), forged (one signature bit flipped), absent (404); hostile: echo-error (a 500 page echoing the API key), key-in-key-name, product (signed by a 'product' key), duplicate-member.",
            valueName: "MODE"))
    var listing: SandboxConfiguration.ListingMode = .signed
    @Option(
        help: ArgumentHelp(
            "Keys sold before start: lines of key,owner_name,email, added to the inventory and assigned to those owners.",
            valueName: "FILE"))
    var preassigned: String?
    @Flag(
        name: .customLong("hostile-text"), help: "Signed messages carry ESC, BEL, newline and tab (a hostile server).")
    var hostileText = false
    @Flag(
        name: .customLong("no-signature-cache"),
        help: "Sign every reply afresh (benchmark baseline; normally identical signed texts reuse one signature).")
    var noSignatureCache = false

    func validate() throws {
        if keys != nil && generateKeys != nil {
            throw ValidationError("give either --keys or --generate-keys, not both")
        }
        if (rate == nil) != (burst == nil) {
            throw ValidationError("--rate and --burst go together")
        }
        try checkFlag(.port, port)
        try checkFlag(.generateKeys, generateKeys)
        try checkFlag(.sandboxRate, rate)
        try checkFlag(.sandboxBurst, burst)
        do {
            _ = try quota.map { try RateLimit.parseQuota($0, flag: "--quota") }
        } catch let error as KeyAssignError {
            throw ValidationError(error.message)
        }
        for (flag, value) in [
            ("--fail-5xx", fail5xx), ("--fail-429", fail429), ("--drop-before", dropBefore),
            ("--drop-after", dropAfter), ("--bad-signature", badSignature), ("--stale", stale),
            ("--string-code", stringCode), ("--echo-error", echoError),
            ("--undocumented-code", undocumentedCode), ("--late-reply", lateReply),
            ("--listing-omit", listingOmit),
        ] {
            try checkFlag(.probability(flag), value)
        }
        try checkFlag(.lateReplyDelay, lateReplyDelay)
        try checkFlag(.listingDelay, listingDelay)
        if let latency {
            do {
                switch try SandboxConfiguration.Latency.parse(latency) {
                case .none: break
                case .fixed(let ms): try checkFlag(.latency, ms)
                case .range(let low, let high):
                    try checkFlag(.latency, low)
                    try checkFlag(.latency, high)
                }
            } catch let error as KeyAssignError {
                throw ValidationError(error.message)
            }
        }
        if retryAfter != "none" {
            guard let seconds = Double(retryAfter) else {
                throw ValidationError("--retry-after \(retryAfter): give whole seconds or none")
            }
            try checkFlag(.retryAfter, seconds)
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
        configuration.quotas = try quota.map { try RateLimit.parseQuota($0, flag: "--quota") }
        configuration.faults.fail5xx = fail5xx
        configuration.faults.fail429 = fail429
        configuration.faults.dropBefore = dropBefore
        configuration.faults.dropAfter = dropAfter
        configuration.faults.badSignature = badSignature
        configuration.faults.stale = stale
        configuration.faults.stringCode = stringCode
        configuration.faults.echoError = echoError
        configuration.faults.undocumentedCode = undocumentedCode
        configuration.faults.lateReply = lateReply
        configuration.faults.lateReplyMilliseconds = lateReplyDelay
        configuration.faults.listingDelayMilliseconds = listingDelay
        configuration.faults.listingOmit = listingOmit
        configuration.faults.retryAfter429 = retryAfter == "none" ? nil : Int(retryAfter)
        configuration.faults.wafBlock = wafBlock
        configuration.faults.seed = seed
        configuration.keyName = keyName
        configuration.escapesSlashes = escapeSlashes
        configuration.cachesSignatures = !noSignatureCache
        configuration.listing = listing
        configuration.hostileText = hostileText
        do {
            if let preassigned { configuration.preassigned = try PreassignedFile.read(preassigned) }
            if let latency { configuration.faults.latency = try SandboxConfiguration.Latency.parse(latency) }
            try SandboxForeground.run(configuration)
        } catch let error as KeyAssignError {
            FileHandle.standardError.write(Data("keyassign sandbox: \(error.message)\n".utf8))
            throw ExitCode(error.status.rawValue)
        }
    }
}
