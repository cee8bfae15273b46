import CCurl
import Foundation

/// Bytes malloc'd by the transport and owned here: a listing may be hundreds of megabytes, so
/// it is handed over from libcurl's buffer rather than copied into an array.
public final class OwnedBytes: @unchecked Sendable {
    private let base: UnsafeMutablePointer<UInt8>?
    public let count: Int

    init(taking base: UnsafeMutablePointer<UInt8>?, count: Int) {
        self.base = base
        self.count = base == nil ? 0 : count
    }

    public convenience init(copying bytes: [UInt8]) {
        let memory = malloc(max(1, bytes.count))?.assumingMemoryBound(to: UInt8.self)
        bytes.withUnsafeBufferPointer { source in
            if let memory, let from = source.baseAddress { memory.update(from: from, count: bytes.count) }
        }
        self.init(taking: memory, count: bytes.count)
    }

    deinit { free(base) }

    public var buffer: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }
}

/// What came back from `GET /api/v1/get-license-keys`, before any verification.
public enum ListingResponse: Sendable {
    case body(OwnedBytes)
    /// The server has no such endpoint (404): keyassign goes on as if it had no listing.
    case notFound
    /// The reply grew beyond `--max-listing-bytes`; reading stopped there.
    case tooLarge(limit: Int)
    /// Another HTTP status; the start of the body for the message, the API key redacted.
    case status(Int, [UInt8])
    /// The exchange failed (connection refused, timeout, TLS, ...).
    case failed(String)
}

/// Fetches the key listing once, through the same libcurl shim as the assign calls: one GET
/// with `Authorization: Bearer`, redirects refused, the system trust store or `--ca-file`.
/// Synchronous: a run or `reconcile` makes this one request and has nothing else to do meanwhile.
public struct ListingClient: Sendable {
    public var endpoint: ServerEndpoint
    public var apiKey: String
    public var timeout: Double
    public var caFile: String?
    public var maxBytes: Int
    /// `--listing-timeout`: the whole transfer, from connecting to the last byte.
    public var listingTimeout: Double = ListingClient.defaultListingTimeout
    /// How long the server may take to begin answering (its first header line), counted
    /// from the start of the transfer: what is left of a run's `--max-wait`, and never less
    /// than `timeout` (one request's worth). nil: the whole `listingTimeout`.
    public var firstByteWait: Double?

    /// A listing of the whole inventory is far larger than one assign reply: 200,000 keys are
    /// about 130 MB, which takes 9 minutes at 2 Mbit/s. 15 minutes, while it keeps moving.
    public static let defaultListingTimeout = 900.0
    /// A listing slower than 1 KiB/s for 2 minutes has stalled (a proxy holding the
    /// connection, a server that stopped writing): it is cut, whatever the timeout says.
    public static let lowSpeedBytesPerSecond = 1024
    public static let lowSpeedSeconds = 120
    /// The low-speed limit this client applies (the defaults above; a test shortens it).
    public var lowSpeed = (bytesPerSecond: ListingClient.lowSpeedBytesPerSecond, seconds: ListingClient.lowSpeedSeconds)

    public init(endpoint: ServerEndpoint, apiKey: String, timeout: Double, caFile: String?, maxBytes: Int) {
        self.endpoint = endpoint
        self.apiKey = apiKey
        self.timeout = timeout
        self.caFile = caFile
        self.maxBytes = maxBytes
    }

    /// "5", "2.5": tenths, without a trailing ".0".
    private static func seconds(_ value: Double) -> String {
        let tenths = (value * 10).rounded() / 10
        return tenths == tenths.rounded() ? String(Int(tenths)) : String(format: "%.1f", tenths)
    }

    /// Throws `KeyAssignError(.config)` when libcurl cannot be used or refuses an option.
    public func fetch() throws -> ListingResponse {
        var waited = 0.0
        return try fetch(waited: &waited)
    }

    /// `fetch()`, also saying how long the server took to begin answering (the whole fetch
    /// when it never did): what a run counts against `--max-wait`.
    public func fetch(waited: inout Double) throws -> ListingResponse {
        try LibCurl.initialize()
        func milliseconds(_ seconds: Double) -> Int { Int(max(1, (seconds * 1000).rounded())) }
        let seconds = listingTimeout
        let limits = CurlExchange.Settings.ListingLimits(
            connectMilliseconds: milliseconds(min(timeout, seconds)),
            firstByteMilliseconds: milliseconds(min(firstByteWait.map { max($0, timeout) } ?? seconds, seconds)),
            lowSpeedBytesPerSecond: lowSpeed.bytesPerSecond, lowSpeedSeconds: lowSpeed.seconds)
        let settings = try CurlExchange.Settings(
            url: endpoint.listingURL.absoluteString, method: .get,
            headers: [
                "Accept: application/json",
                "Authorization: Bearer \(apiKey)",
                "User-Agent: keyassign/\(KeyAssignVersion.string)",
            ],
            timeoutMilliseconds: milliseconds(seconds), caFile: caFile, maxReply: maxBytes, listingLimits: limits)
        let exchange = try CurlExchange(settings)
        // A listing must be the server's current state, never a cache's.
        let started = Timestamps.monotonic()
        let code = exchange.perform(header: "Cache-Control: no-cache")
        // Waiting is the time before the server began to answer; receiving is not waiting.
        waited = exchange.secondsToFirstByte ?? (Timestamps.monotonic() - started)
        if exchange.overflowed { return .tooLarge(limit: maxBytes) }
        if code == CURLE_ABORTED_BY_CALLBACK && !exchange.responseStarted {
            let limit = Double(limits.firstByteMilliseconds) / 1000
            return .failed(
                "the server did not begin to answer within \(Self.seconds(limit)) s ("
                    + (firstByteWait != nil ? "what was left of --max-wait, at least --timeout)" : "--listing-timeout)")
            )
        }
        // Connected, then silent until the whole transfer's time ran out.
        if code == CURLE_OPERATION_TIMEDOUT && !exchange.responseStarted
            && exchange.errorDetail?.contains("0 bytes received") == true
        {
            return .failed("the server did not begin to answer within \(Self.seconds(seconds)) s (--listing-timeout)")
        }
        if code == CURLE_OPERATION_TIMEDOUT && exchange.errorDetail?.contains("too slow") == true {
            return .failed(
                "the listing stalled: slower than \(lowSpeed.bytesPerSecond) bytes/s for \(lowSpeed.seconds) s")
        }
        let redactor = SecretRedactor(secret: apiKey)
        if code != CURLE_OK {
            let described = AssignClient.describe(curlCode: Int32(bitPattern: code.rawValue))
            let detail = exchange.errorDetail.map { "\(described): \($0)" } ?? described
            return .failed(redactor?.redact(detail) ?? detail)
        }
        let status = exchange.status
        let (base, length) = exchange.takeReply()
        let bytes = OwnedBytes(taking: base, count: length)
        switch status {
        case 200: return .body(bytes)
        case 404: return .notFound
        default:
            // An error page may echo the request, the Authorization header with it: the key is
            // taken out before any of it is kept, over far more than is kept (no spelling of a
            // key is 64 KiB long), so that the cut cannot leave half of a spelling behind.
            let page = Array(bytes.buffer.prefix(64 << 10))
            return .status(status, Array((redactor?.redact(page).bytes ?? page).prefix(512)))
        }
    }
}
