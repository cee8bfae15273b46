import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// What came back from one HTTP exchange, before any verification.
public enum TransportResult: Sendable, Equatable {
    /// The server answered (any status). `retryAfter` is the `Retry-After` header, raw.
    case response(status: Int, retryAfter: String?, body: [UInt8])
    /// The request cannot have reached the server: no connection was made.
    case notSent(String)
    /// The connection failed or timed out after the request may have been sent.
    case maybeSent(String)
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

/// The HTTP call to `assign-license-key` on URLSession (libcurl on Linux): keep-alive
/// connections, at most `concurrency` per host, a timeout per request, redirects refused.
///
/// Known cost on Linux: FoundationNetworking leaks the parsed URL parts (~160 bytes of heap) of
/// every HTTP transfer, whatever the task API or configuration. Its host check
/// (`CFURLSessionCurlHostIsEqual`, run by every `_EasyHandle.set(url:)`) frees its CURLU handle
/// with `curl_free` instead of `curl_url_cleanup`. Nothing here can avoid that;
/// `scripts/urlsession-leak.sh` measures it.
public final class AssignClient: @unchecked Sendable {
    public struct Options: Sendable {
        public var endpoint: ServerEndpoint
        public var apiKey: String
        public var body: BodyEncoding
        public var concurrency: Int
        public var timeout: Double

        public init(endpoint: ServerEndpoint, apiKey: String, body: BodyEncoding = .form, concurrency: Int, timeout: Double) {
            self.endpoint = endpoint
            self.apiKey = apiKey
            self.body = body
            self.concurrency = concurrency
            self.timeout = timeout
        }
    }

    /// Several sessions, because one URLSession on Linux drives all its transfers from one
    /// serial queue (one libcurl multi handle): measured, that queue saturates a core at
    /// ~1,400 requests/s while the rest of the run waits. Requests are spread round-robin.
    private let sessions: [URLSession]
    /// One serial queue per session that creates and starts its tasks: `dataTask` and
    /// `resume` each wait for the session's internal queue, and the caller (the runner's
    /// dispatch loop) should not block on that per request.
    private let starters: [DispatchQueue]
    private let next = NSLock()
    private var counter = 0
    private let options: Options
    private let bodyBuilder: RequestBodyBuilder
    /// The headers every request carries, set once: a copy of it is cheaper than six
    /// `setValue` calls per request.
    private let template: URLRequest

    public init(_ options: Options) {
        self.options = options
        self.bodyBuilder = RequestBodyBuilder(encoding: options.body, apiKey: options.apiKey)
        var template = URLRequest(url: options.endpoint.url, cachePolicy: .reloadIgnoringLocalCacheData,
                                  timeoutInterval: options.timeout)
        template.httpMethod = "POST"
        template.setValue(options.body.contentType, forHTTPHeaderField: "Content-Type")
        template.setValue("application/json", forHTTPHeaderField: "Accept")
        template.setValue("Bearer \(options.apiKey)", forHTTPHeaderField: "Authorization")
        template.setValue("keyassign/\(KeyAssignVersion.string)", forHTTPHeaderField: "User-Agent")
        self.template = template
        let sessionCount = max(1, min(options.concurrency / 8, ProcessInfo.processInfo.activeProcessorCount))
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = max(1, (options.concurrency + sessionCount - 1) / sessionCount)
        configuration.timeoutIntervalForRequest = options.timeout
        configuration.timeoutIntervalForResource = options.timeout
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        configuration.urlCredentialStorage = nil
        // Without this, every response header line is turned into a String and parsed for
        // Set-Cookie (httpShouldSetCookies only stops sending them): ~0.03 ms CPU per reply.
        configuration.httpCookieAcceptPolicy = .never
        // One completion at a time: verifying a reply costs ~30 µs, and a concurrent queue
        // wakes a second thread per completion for it. Measured with 20,000 rows
        // (scripts/bench-run.sh): CPU per row 0.52 → 0.47 ms, fewer context switches.
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        queue.name = "keyassign.transport"
        let refuser = RedirectRefuser()
        self.sessions = (0..<sessionCount).map { _ in
            URLSession(configuration: configuration, delegate: refuser, delegateQueue: queue)
        }
        self.starters = (0..<sessionCount).map { DispatchQueue(label: "keyassign.transport.start.\($0)") }
    }

    deinit {
        invalidate()
    }

    /// Lets queued starts finish first: creating a task on an invalidated session traps.
    private func invalidate() {
        for starter in starters { starter.sync {} }
        for session in sessions { session.invalidateAndCancel() }
    }

    private func nextIndex() -> Int {
        if sessions.count == 1 { return 0 }
        next.lock()
        counter &+= 1
        let index = counter % sessions.count
        next.unlock()
        return index
    }

    /// Sends one request; `completion` runs on the sessions' serial delegate queue.
    public func send(_ request: AssignRequest, completion: @escaping @Sendable (TransportResult) -> Void) {
        let index = nextIndex()
        let session = sessions[index]
        // Building the URLRequest is Foundation work too (header normalisation): done on the
        // session's starter queue, in parallel with the other sessions.
        starters[index].async { [template, bodyBuilder] in
            var urlRequest = template
            urlRequest.httpBody = Data(bodyBuilder.body(licenseKey: request.licenseKey, ownerName: request.ownerName,
                                                        email: request.email))
            urlRequest.setValue(request.idempotencyToken, forHTTPHeaderField: "Idempotency-Key")
            let task = session.dataTask(with: urlRequest) { data, response, error in
                completion(AssignClient.result(data: data, response: response, error: error))
            }
            task.resume()
        }
    }

    /// Stops every request still running; their completions report them as cancelled.
    public func cancelAll() {
        invalidate()
    }

    /// Replies are capped when stored: a signed envelope is a few hundred bytes, and a
    /// misconfigured proxy's HTML page is not worth megabytes of audit trail.
    static let maximumStoredReply = 64 * 1024

    static func result(data: Data?, response: URLResponse?, error: Error?) -> TransportResult {
        if let http = response as? HTTPURLResponse, error == nil {
            var body = data.map { [UInt8]($0) } ?? []
            if body.count > maximumStoredReply { body.removeLast(body.count - maximumStoredReply) }
            return .response(status: http.statusCode, retryAfter: http.value(forHTTPHeaderField: "Retry-After"), body: body)
        }
        guard let error else { return .maybeSent("no HTTP response") }
        let text = AssignClient.describe(error)
        if let urlError = error as? URLError {
            switch urlError.code {
            case .cannotFindHost, .cannotConnectToHost, .dnsLookupFailed, .notConnectedToInternet,
                 .unsupportedURL, .badURL, .secureConnectionFailed, .serverCertificateUntrusted,
                 .serverCertificateHasBadDate, .serverCertificateNotYetValid, .serverCertificateHasUnknownRoot,
                 .clientCertificateRejected, .clientCertificateRequired, .appTransportSecurityRequiresSecureConnection:
                return .notSent(text)
            default:
                return .maybeSent(text)
            }
        }
        return .maybeSent(text)
    }

    /// The error's kind and code, never the request (whose body holds the API key).
    static func describe(_ error: Error) -> String {
        if let urlError = error as? URLError {
            let name: String
            switch urlError.code {
            case .timedOut: name = "timed out"
            case .cannotConnectToHost: name = "cannot connect to host"
            case .cannotFindHost, .dnsLookupFailed: name = "cannot resolve host"
            case .networkConnectionLost: name = "connection lost"
            case .notConnectedToInternet: name = "no network"
            case .cancelled: name = "cancelled"
            case .secureConnectionFailed: name = "TLS handshake failed"
            case .serverCertificateUntrusted, .serverCertificateHasUnknownRoot: name = "server certificate not trusted"
            case .serverCertificateHasBadDate, .serverCertificateNotYetValid: name = "server certificate out of its validity dates"
            case .badServerResponse: name = "bad server response"
            case .zeroByteResource: name = "empty reply"
            default: name = "network error"
            }
            return "\(name) (URLError \(urlError.code.rawValue))"
        }
        let nsError = error as NSError
        return "network error (\(nsError.domain) \(nsError.code))"
    }
}

/// A POST that is redirected is not the call we meant to make (and libcurl may turn it into a
/// GET): the 3xx comes back as it is and the row fails with a message about `--server`.
private final class RedirectRefuser: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void) {
        completionHandler(nil)
    }
}
