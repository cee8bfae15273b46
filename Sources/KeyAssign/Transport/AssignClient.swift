import CCurl
import Foundation

/// What came back from one HTTP exchange, before any verification.
public enum TransportResult: Sendable, Equatable {
    /// The server answered (any status). `retryAfter` is the `Retry-After` header, raw.
    case response(status: Int, retryAfter: String?, body: [UInt8])
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
/// Why libcurl directly rather than through URLSession (which is libcurl on Linux too): measured
/// with 20,000 rows, URLSession's per-transfer Foundation work capped a run at ~2,900 rows/s on
/// this 2-core machine, and FoundationNetworking leaks ~170 bytes of every transfer's parsed
/// URL (`CFURLSessionCurlHostIsEqual` frees a CURLU with `curl_free`), 250 MB over a
/// million-row run. `docs/benchmarks.md` has the figures before and after.
public final class AssignClient: @unchecked Sendable {
    public struct Options: Sendable {
        public var endpoint: ServerEndpoint
        public var apiKey: String
        public var body: BodyEncoding
        public var concurrency: Int
        public var timeout: Double
        /// PEM trust anchors for a server whose certificate a private CA signed.
        public var caFile: String?
        /// Guard against libcurl's own resends the way libcurl older than 7.80 needs it
        /// (see `on_prerequest` in CCurl.c); for tests of that path.
        var unrewindableBody = false

        public init(endpoint: ServerEndpoint, apiKey: String, body: BodyEncoding = .form, concurrency: Int,
                    timeout: Double, caFile: String? = nil) {
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

    /// Fails with `KeyAssignError(.config)` when libcurl cannot be loaded.
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
        self.loop = try TransferLoop(url: options.endpoint.url.absoluteString, headers: headers,
                                     timeout: options.timeout, caFile: options.caFile,
                                     maxConnections: options.concurrency, maxReply: AssignClient.maximumStoredReply,
                                     unrewindableBody: options.unrewindableBody)
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
    static func result(curlCode: Int32, status: Int, requestBytes: Int, reply: [UInt8], retryAfter: String?,
                       detail: String? = nil) -> TransportResult {
        if curlCode == 0 {
            return status > 0 ? .response(status: status, retryAfter: retryAfter, body: reply) : .maybeSent("no HTTP response")
        }
        if requestBytes == 0 && certificateCodes.contains(curlCode) {
            let text = detail.map { "\($0) (curl \(curlCode))" } ?? describe(curlCode: curlCode)
            return .tlsFailure(text)
        }
        let text = describe(curlCode: curlCode)
        return requestBytes == 0 ? .notSent(text) : .maybeSent(text)
    }

    /// Certificate verification failures: retrying cannot help until someone changes
    /// --ca-file or --server. (A failed handshake, 35, is not among them: it can be transient.)
    /// 51 is what libcurl before 7.62 called a host name mismatch.
    static let certificateCodes: Set<Int32> = [51, 60, 77, 83, 90, 91]

    /// The error's kind and code, never the request (whose headers and body hold the API key).
    static func describe(curlCode: Int32) -> String {
        let name: String
        switch curlCode {
        case 1: name = "unsupported protocol"
        case 3: name = "malformed URL"
        case 5: name = "cannot resolve proxy"
        case 6: name = "cannot resolve host"
        case 7: name = "cannot connect to host"
        case 8: name = "bad server response"
        case 28: name = "timed out"
        case 35: name = "TLS handshake failed"
        case 42: name = "cancelled"
        case 52: name = "empty reply"
        case 55: name = "connection lost while sending"
        case 56: name = "connection lost while receiving"
        case 58, 77: name = "cannot use the CA file"
        case 51: name = "server certificate does not match the host name"
        case 83: name = "server certificate issuer check failed"
        case 90: name = "server public key does not match the pinned key"
        case 91: name = "server certificate status invalid"
        case 65: name = "connection lost before any reply (not resent: the server may have processed it)"
        case 60: name = "server certificate not trusted"
        case 97: name = "proxy refused the connection"
        default: name = "network error"
        }
        let detail = curlCode == 0 ? "" : ka_curl_strerror(curlCode).map { ": " + String(cString: $0) } ?? ""
        return "\(name) (curl \(curlCode)\(detail))"
    }
}
