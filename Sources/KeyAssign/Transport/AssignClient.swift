import CCurl
import Foundation

/// What came back from one HTTP exchange, before any verification.
public enum TransportResult: Sendable, Equatable {
    /// The server answered (any status). `retryAfter` is the `Retry-After` header, raw;
    /// `rateLimit` its `X-RateLimit-*` headers, when it sent any.
    case response(status: Int, retryAfter: String?, body: [UInt8], rateLimit: RateLimitHeaders? = nil)
    /// The request cannot have reached the server: no byte of it was written to a connection.
    case notSent(String)
    /// The exchange failed after the request may have reached the server.
    case maybeSent(String)
    /// The server's certificate was refused (not trusted, wrong host name, unreadable CA file):
    /// nothing was sent, and nothing will be until the configuration changes.
    case tlsFailure(String)
}

/// One request's input: the fields of the row being sent.
public struct AssignRequest: Sendable {
    public var licenseKey: String
    public var ownerName: String?
    public var email: String?
    public var idempotencyToken: String

    public init(licenseKey: String, ownerName: String?, email: String?, idempotencyToken: String) {
        self.licenseKey = licenseKey
        self.ownerName = ownerName
        self.email = email
        self.idempotencyToken = idempotencyToken
    }
}

/// The HTTP call to `assign-license-key`, on libcurl: keep-alive connections, at most
/// `concurrency` of them, a timeout per request, redirects refused, the system trust store or
/// `caFile` for TLS.
///
/// Why libcurl directly rather than through URLSession (which is libcurl on Linux too):
/// URLSession's per-transfer Foundation work capped a run's throughput, and FoundationNetworking
/// leaks part of every transfer's parsed URL (`CFURLSessionCurlHostIsEqual` frees a CURLU with
/// `curl_free`), so memory grows with every row of a run. `docs/benchmarks.md` has the figures
/// before and after.
public final class AssignClient: @unchecked Sendable {
    public struct Options: Sendable {
        public var endpoint: ServerEndpoint
        public var apiKey: String
        public var body: BodyEncoding
        public var concurrency: Int
        public var timeout: Double
        /// PEM trust anchors for a server whose certificate a private CA signed.
        public var caFile: String?

        public init(
            endpoint: ServerEndpoint, apiKey: String, body: BodyEncoding = .form, concurrency: Int,
            timeout: Double, caFile: String? = nil
        ) {
            self.endpoint = endpoint
            self.apiKey = apiKey
            self.body = body
            self.concurrency = concurrency
            self.timeout = timeout
            self.caFile = caFile
        }
    }

    /// Replies are capped when stored: a signed envelope is a few hundred bytes, and a
    /// misconfigured proxy's HTML page is not worth megabytes of audit trail.
    static let maximumStoredReply = 64 * 1024

    private let bodyBuilder: RequestBodyBuilder
    private let loop: TransferLoop

    /// Fails with `KeyAssignError(.config)` when the system's libcurl is too old or refuses an option.
    public init(_ options: Options) throws {
        self.bodyBuilder = RequestBodyBuilder(encoding: options.body, apiKey: options.apiKey)
        let headers = [
            "Content-Type: \(options.body.contentType)",
            "Accept: application/json",
            "Authorization: Bearer \(options.apiKey)",
            "User-Agent: keyassign/\(KeyAssignVersion.string)",
            // libcurl 7.x asks for 100-continue before a body over 1 KiB: a round trip for nothing.
            "Expect:",
        ]
        self.loop = try TransferLoop(
            url: options.endpoint.url.absoluteString, headers: headers,
            timeout: options.timeout, caFile: options.caFile,
            maxConnections: options.concurrency, maxReply: AssignClient.maximumStoredReply)
    }

    deinit {
        loop.stop()
    }

    /// Sends one request; `completion` runs on the transport's serial reply queue.
    public func send(_ request: AssignRequest, completion: @escaping @Sendable (TransportResult) -> Void) {
        let body = bodyBuilder.body(licenseKey: request.licenseKey, ownerName: request.ownerName, email: request.email)
        loop.enqueue(header: "Idempotency-Key: \(request.idempotencyToken)", body: body, completion: completion)
    }

    /// Stops every request still running; their completions report them as cancelled.
    public func cancelAll() {
        loop.cancelAll()
    }

    /// A finished exchange as the runner sees it. `requestBytes` decides between not sent and
    /// maybe sent: libcurl counts what it wrote of the request to a connection, so 0 means the
    /// server cannot have acted on it, whatever went wrong after. `detail` is libcurl's error
    /// buffer, which names the certificate check that failed.
    static func result(
        curlCode: Int32, status: Int, requestBytes: Int, reply: [UInt8], retryAfter: String?,
        rateLimit: RateLimitHeaders? = nil, detail: String? = nil
    ) -> TransportResult {
        if CURLcode(rawValue: UInt32(bitPattern: curlCode)) == CURLE_OK {
            return status > 0
                ? .response(status: status, retryAfter: retryAfter, body: reply, rateLimit: rateLimit)
                : .maybeSent("no HTTP response")
        }
        if requestBytes == 0 && certificateCodes.contains(curlCode) {
            let text = detail.map { "\($0) (curl \(curlCode))" } ?? describe(curlCode: curlCode)
            return .tlsFailure(text)
        }
        let text = describe(curlCode: curlCode)
        return requestBytes == 0 ? .notSent(text) : .maybeSent(text)
    }

    /// Certificate verification failures: retrying cannot help until someone changes
    /// --ca-file or --server. (A failed handshake, CURLE_SSL_CONNECT_ERROR, is not among them:
    /// it can be transient.)
    static let certificateCodes: Set<Int32> = Set(
        [
            CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR,
            CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS,
        ].map { Int32(bitPattern: $0.rawValue) })

    /// The error's kind and code, never the request (whose headers and body hold the API key).
    static func describe(curlCode: Int32) -> String {
        let code = CURLcode(rawValue: UInt32(bitPattern: curlCode))
        let name: String
        switch code {
        case CURLE_UNSUPPORTED_PROTOCOL: name = "unsupported protocol"
        case CURLE_URL_MALFORMAT: name = "malformed URL"
        case CURLE_COULDNT_RESOLVE_PROXY: name = "cannot resolve proxy"
        case CURLE_COULDNT_RESOLVE_HOST: name = "cannot resolve host"
        case CURLE_COULDNT_CONNECT: name = "cannot connect to host"
        case CURLE_WEIRD_SERVER_REPLY: name = "bad server response"
        case CURLE_OPERATION_TIMEDOUT: name = "timed out"
        case CURLE_SSL_CONNECT_ERROR: name = "TLS handshake failed"
        case CURLE_ABORTED_BY_CALLBACK: name = "cancelled"
        case CURLE_GOT_NOTHING: name = "empty reply"
        case CURLE_SEND_ERROR: name = "connection lost while sending"
        case CURLE_RECV_ERROR: name = "connection lost while receiving"
        case CURLE_SSL_CERTPROBLEM, CURLE_SSL_CACERT_BADFILE: name = "cannot use the CA file"
        case CURLE_SEND_FAIL_REWIND:
            name = "connection lost before any reply (not resent: the server may have processed it)"
        case CURLE_PEER_FAILED_VERIFICATION: name = "server certificate not trusted"
        case CURLE_PROXY: name = "proxy refused the connection"
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH: name = "server public key does not match the pinned key"
        case CURLE_SSL_INVALIDCERTSTATUS: name = "server certificate status invalid"
        case CURLE_SSL_ISSUER_ERROR: name = "server certificate issuer check failed"
        default: name = "network error"
        }
        let detail = code == CURLE_OK ? "" : ": " + LibCurl.describe(code)
        return "\(name) (curl \(curlCode)\(detail))"
    }
}
