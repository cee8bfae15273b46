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
    /// Another HTTP status; the body (up to the cap) for the message.
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

    /// Throws `KeyAssignError(.config)` when libcurl cannot be loaded.
    public func fetch() throws -> ListingResponse {
        var message = [CChar](repeating: 0, count: 512)
        guard ka_curl_load(&message, message.count) == 0 else {
            throw KeyAssignError(.config, String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        let headers = [
            "Accept: application/json",
            "Authorization: Bearer \(apiKey)",
            "User-Agent: keyassign/\(KeyAssignVersion.string)",
        ]
        let copies = headers.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let seconds = max(timeout, Self.minimumTimeout)
        let multi: OpaquePointer? = copies.map { UnsafePointer($0) }.withUnsafeBufferPointer { headerPointers in
            endpoint.listingURL.absoluteString.withCString { url in
                withOptionalCString(caFile) { ca in
                    var settings = ka_transport_settings(
                        url: url, headers: headerPointers.baseAddress, header_count: Int32(headers.count),
                        timeout_ms: Int(max(1, (seconds * 1000).rounded())), connect_timeout_ms: 0,
                        ca_file: ca, max_reply: maxBytes, unrewindable_body: 0)
                    return ka_multi_new(&settings, 1)
                }
            }
        }
        guard let multi else { throw KeyAssignError(.ioError, "cannot set up libcurl (out of memory)") }
        defer { ka_multi_free(multi) }
        guard let exchange = ka_exchange_new(multi) else { throw KeyAssignError(.ioError, "cannot set up libcurl (out of memory)") }
        defer { ka_exchange_free(exchange) }
        let useGet = ka_exchange_use_get(exchange)
        guard useGet == 0 else { return .failed(AssignClient.describe(curlCode: useGet)) }
        // A listing must be the server's current state, never a cache's.
        let started = "Cache-Control: no-cache".withCString { ka_exchange_start(multi, exchange, $0, nil, 0) }
        guard started == 0 else { return .failed(AssignClient.describe(curlCode: started)) }
        var code: Int32 = 0
        while true {
            if ka_multi_run(multi, 1000, &message, message.count) < 0 {
                ka_exchange_abort(multi, exchange)
                return .failed("transport failure: " + String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            if ka_multi_next_done(multi, &code) != nil { break }
        }
        if ka_exchange_reply_overflowed(exchange) != 0 { return .tooLarge(limit: maxBytes) }
        if code != 0 { return .failed(AssignClient.describe(curlCode: code)) }
        let status = Int(ka_exchange_status(exchange))
        var length = 0
        let bytes = OwnedBytes(taking: ka_exchange_take_reply(exchange, &length), count: length)
        switch status {
        case 200: return .body(bytes)
        case 404: return .notFound
        default: return .status(status, Array(bytes.buffer.prefix(512)))
        }
    }
}

private func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let string else { return body(nil) }
    return string.withCString { body($0) }
}
