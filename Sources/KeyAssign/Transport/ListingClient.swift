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

    /// The whole transfer gets at least this long: a listing of the whole inventory is far
    /// larger than one assign reply, and cutting it short only means settling nothing.
    public static let minimumTimeout = 300.0

    public init(endpoint: ServerEndpoint, apiKey: String, timeout: Double, caFile: String?, maxBytes: Int) {
        self.endpoint = endpoint
        self.apiKey = apiKey
        self.timeout = timeout
        self.caFile = caFile
        self.maxBytes = maxBytes
    }

    /// Throws `KeyAssignError(.config)` when libcurl cannot be used or refuses an option.
    public func fetch() throws -> ListingResponse {
        try LibCurl.initialize()
        let seconds = max(timeout, Self.minimumTimeout)
        let settings = try CurlExchange.Settings(
            url: endpoint.listingURL.absoluteString, method: .get,
            headers: [
                "Accept: application/json",
                "Authorization: Bearer \(apiKey)",
                "User-Agent: keyassign/\(KeyAssignVersion.string)",
            ],
            timeoutMilliseconds: Int(max(1, (seconds * 1000).rounded())), caFile: caFile, maxReply: maxBytes)
        let exchange = try CurlExchange(settings)
        // A listing must be the server's current state, never a cache's.
        let code = exchange.perform(header: "Cache-Control: no-cache")
        if exchange.overflowed { return .tooLarge(limit: maxBytes) }
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
