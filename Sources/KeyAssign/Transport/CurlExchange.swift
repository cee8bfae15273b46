import CCurl
import Foundation

/// One HTTP exchange slot: a libcurl easy handle, reused for request after request so that its
/// connection, DNS and TLS session caches (held by the multi handle) are reused too, plus the
/// record its callbacks fill (`ka_on_reply`, `ka_on_header`, `ka_on_prerequest` in CCurl.c).
/// Used by one thread at a time: the transport's loop.
final class CurlExchange {
    /// The settings every exchange of a transport gets once, and the fixed request headers,
    /// which libcurl reads from this list without copying it.
    final class Settings {
        /// POST for the assign call; GET for the key listing, whose reply must arrive whole.
        enum Method { case post, get }

        let url: String
        let method: Method
        let timeoutMilliseconds: Int
        /// A PEM file of trust anchors for the server's certificate, or nil for the system store.
        let caFile: String?
        /// Reply bytes kept; the rest of a longer reply is read and dropped.
        let maxReply: Int
        /// The proxy, decided from the URL and the environment (`ProxyChoice`), never by libcurl.
        let proxy: ProxyChoice
        /// The key listing's limits (nil for the assign call, which `timeoutMilliseconds` bounds
        /// alone): see `ListingClient`.
        let listingLimits: ListingLimits?
        fileprivate let headers: UnsafeMutablePointer<curl_slist>?

        /// How long a listing may take to connect and to begin answering, and how slow it may
        /// get once it does.
        struct ListingLimits {
            var connectMilliseconds: Int
            /// From the start of the transfer to the response's first header line.
            var firstByteMilliseconds: Int
            /// CURLOPT_LOW_SPEED_LIMIT bytes per second, averaged over CURLOPT_LOW_SPEED_TIME.
            var lowSpeedBytesPerSecond: Int
            var lowSpeedSeconds: Int
        }

        /// `headers` are "Name: value" lines sent with every request.
        init(
            url: String, method: Method = .post, headers: [String], timeoutMilliseconds: Int, caFile: String?,
            maxReply: Int, listingLimits: ListingLimits? = nil
        ) throws {
            var list: UnsafeMutablePointer<curl_slist>?
            for header in headers {
                guard let longer = curl_slist_append(list, header) else {
                    curl_slist_free_all(list)
                    throw KeyAssignError(.ioError, "cannot set up libcurl (out of memory)")
                }
                list = longer
            }
            self.url = url
            self.method = method
            self.timeoutMilliseconds = timeoutMilliseconds
            self.caFile = caFile
            self.maxReply = maxReply
            self.proxy = ProxyChoice.decide(url: url)
            self.listingLimits = listingLimits
            self.headers = list
        }

        deinit {
            curl_slist_free_all(headers)
        }
    }

    /// The easy handle, which also names the exchange in the multi handle's messages.
    let handle: UnsafeMutableRawPointer
    private let settings: Settings
    private let record: UnsafeMutablePointer<ka_exchange_record>
    /// The per-request header ("Idempotency-Key: ...") chained in front of the fixed ones.
    private let requestHeader: UnsafeMutablePointer<curl_slist>

    /// Fails with `KeyAssignError(.config)` naming the option this libcurl refused.
    init(_ settings: Settings) throws {
        guard let handle = curl_easy_init() else {
            throw KeyAssignError(.ioError, "cannot set up libcurl (out of memory)")
        }
        self.handle = handle
        self.settings = settings
        record = .allocate(capacity: 1)
        record.initialize(to: ka_exchange_record())
        record.pointee.max_reply = settings.maxReply
        requestHeader = .allocate(capacity: 1)
        requestHeader.initialize(to: curl_slist(data: nil, next: settings.headers))
        try configure()
    }

    deinit {
        curl_easy_cleanup(handle)
        free(requestHeader.pointee.data)
        requestHeader.deallocate()
        free(record.pointee.reply)
        record.deallocate()
    }

    private func configure() throws {
        func set(_ option: CURLoption, _ name: String, _ value: Int) throws {
            try LibCurl.check(ka_easy_setopt_long(handle, option, value), setting: name)
        }
        func set(_ option: CURLoption, _ name: String, _ value: UnsafeRawPointer?) throws {
            try LibCurl.check(ka_easy_setopt_ptr(handle, option, value), setting: name)
        }
        func set(_ option: CURLoption, _ name: String, _ value: String) throws {
            // libcurl copies string options.
            try value.withCString { try set(option, name, UnsafeRawPointer($0)) }
        }
        let record = UnsafeRawPointer(self.record)
        try set(CURLOPT_URL, "CURLOPT_URL", settings.url)
        try LibCurl.check(
            ka_easy_setopt_write_func(handle, CURLOPT_WRITEFUNCTION, ka_on_reply), setting: "CURLOPT_WRITEFUNCTION")
        try set(CURLOPT_WRITEDATA, "CURLOPT_WRITEDATA", record)
        try LibCurl.check(
            ka_easy_setopt_write_func(handle, CURLOPT_HEADERFUNCTION, ka_on_header), setting: "CURLOPT_HEADERFUNCTION")
        try set(CURLOPT_HEADERDATA, "CURLOPT_HEADERDATA", record)
        // The resend guard: without it a lost keep-alive connection could be resent unseen.
        try LibCurl.check(
            ka_easy_setopt_prereq_func(handle, CURLOPT_PREREQFUNCTION, ka_on_prerequest),
            setting: "CURLOPT_PREREQFUNCTION")
        try set(CURLOPT_PREREQDATA, "CURLOPT_PREREQDATA", record)
        try set(CURLOPT_HTTPHEADER, "CURLOPT_HTTPHEADER", UnsafeRawPointer(requestHeader))
        try set(
            CURLOPT_ERRORBUFFER, "CURLOPT_ERRORBUFFER",
            UnsafeRawPointer(self.record).advanced(
                by: MemoryLayout<ka_exchange_record>.offset(of: \ka_exchange_record.error)!))
        // Signals are the runner's (SIGTERM drains the run); libcurl must not use SIGALRM for DNS timeouts.
        try set(CURLOPT_NOSIGNAL, "CURLOPT_NOSIGNAL", 1)
        try set(CURLOPT_TCP_NODELAY, "CURLOPT_TCP_NODELAY", 1)
        try set(CURLOPT_HTTP_VERSION, "CURLOPT_HTTP_VERSION", Int(CURL_HTTP_VERSION_1_1))
        switch settings.method {
        case .post:
            try set(CURLOPT_POST, "CURLOPT_POST", 1)
        case .get:
            try set(CURLOPT_HTTPGET, "CURLOPT_HTTPGET", 1)
            self.record.pointee.fail_on_overflow = 1
        }
        // A redirected POST is not the call we meant to make: the 3xx comes back as it is.
        try set(CURLOPT_FOLLOWLOCATION, "CURLOPT_FOLLOWLOCATION", 0)
        try set(CURLOPT_PROTOCOLS_STR, "CURLOPT_PROTOCOLS_STR", "http,https")
        // Always set, "" included: libcurl then never reads *_proxy from the environment itself.
        try set(CURLOPT_PROXY, "CURLOPT_PROXY", settings.proxy.proxy)
        try set(CURLOPT_NOPROXY, "CURLOPT_NOPROXY", settings.proxy.noProxy)
        try set(CURLOPT_TIMEOUT_MS, "CURLOPT_TIMEOUT_MS", settings.timeoutMilliseconds)
        // Every connection closes abortively (SO_LINGER 0, ka_on_sockopt): a request given up
        // on, or left by a killed run, is discarded by the kernel rather than delivered late.
        try LibCurl.check(
            ka_easy_setopt_sockopt_func(handle, CURLOPT_SOCKOPTFUNCTION, ka_on_sockopt),
            setting: "CURLOPT_SOCKOPTFUNCTION")
        if let limits = settings.listingLimits {
            try set(CURLOPT_CONNECTTIMEOUT_MS, "CURLOPT_CONNECTTIMEOUT_MS", limits.connectMilliseconds)
            try set(CURLOPT_LOW_SPEED_LIMIT, "CURLOPT_LOW_SPEED_LIMIT", limits.lowSpeedBytesPerSecond)
            try set(CURLOPT_LOW_SPEED_TIME, "CURLOPT_LOW_SPEED_TIME", limits.lowSpeedSeconds)
            try LibCurl.check(
                ka_easy_setopt_xferinfo_func(handle, CURLOPT_XFERINFOFUNCTION, ka_on_progress),
                setting: "CURLOPT_XFERINFOFUNCTION")
            try set(CURLOPT_XFERINFODATA, "CURLOPT_XFERINFODATA", record)
            try set(CURLOPT_NOPROGRESS, "CURLOPT_NOPROGRESS", 0)
        }
        if let caFile = settings.caFile {
            // Only that file: Debian's libcurl would otherwise also trust /etc/ssl/certs (CAPATH).
            try set(CURLOPT_CAINFO, "CURLOPT_CAINFO", caFile)
            try set(CURLOPT_CAPATH, "CURLOPT_CAPATH", nil as UnsafeRawPointer?)
        }
    }

    /// Starts one POST on this idle exchange: `header` ("Idempotency-Key: ...") is sent on top of
    /// the fixed headers. `CURLE_OK` when the transfer is running.
    func start(on multi: UnsafeMutableRawPointer, header: String, body: [UInt8]) -> CURLcode {
        guard prepare(header: header) else { return CURLE_OUT_OF_MEMORY }
        // The Content-Length; libcurl copies the body, so `body` may go once this returns.
        var code = ka_easy_setopt_long(handle, CURLOPT_POSTFIELDSIZE, body.count)
        if code == CURLE_OK {
            code = body.withUnsafeBytes { ka_easy_setopt_ptr(handle, CURLOPT_COPYPOSTFIELDS, $0.baseAddress) }
        }
        if code == CURLE_OK && curl_multi_add_handle(multi, handle) != CURLM_OK { code = CURLE_FAILED_INIT }
        return code
    }

    /// Runs one GET on this exchange to its end, on the calling thread (the key listing: one
    /// request, and nothing else to do meanwhile). `header` is sent on top of the fixed headers.
    func perform(header: String) -> CURLcode {
        guard settings.method == .get else { return CURLE_BAD_FUNCTION_ARGUMENT }
        guard prepare(header: header) else { return CURLE_OUT_OF_MEMORY }
        if let limits = settings.listingLimits {
            record.pointee.first_byte_deadline_ms = ka_monotonic_ms() + Int64(limits.firstByteMilliseconds)
        }
        return curl_easy_perform(handle)
    }

    /// Sets the per-request header and forgets what the callbacks recorded of the last
    /// transfer. False when out of memory.
    private func prepare(header: String) -> Bool {
        guard let copy = strdup(header) else { return false }
        free(requestHeader.pointee.data)
        requestHeader.pointee.data = copy
        record.pointee.reply_length = 0
        record.pointee.retry_after.0 = 0
        record.pointee.ratelimit_limit.0 = 0
        record.pointee.ratelimit_remaining.0 = 0
        record.pointee.ratelimit_reset.0 = 0
        record.pointee.requests_issued = 0
        record.pointee.overflowed = 0
        record.pointee.error.0 = 0
        record.pointee.first_byte_deadline_ms = 0
        record.pointee.response_started = 0
        return true
    }

    /// The last transfer ended before its response began (no header line arrived).
    var responseStarted: Bool { record.pointee.response_started != 0 }

    /// Seconds from the start of the last transfer to its first response byte (libcurl's
    /// CURLINFO_STARTTRANSFER_TIME_T); nil when none came.
    var secondsToFirstByte: Double? {
        guard responseStarted else { return nil }
        var microseconds = 0
        guard ka_easy_getinfo_long(handle, CURLINFO_STARTTRANSFER_TIME_T, &microseconds) == CURLE_OK else { return nil }
        return Double(microseconds) / 1_000_000
    }

    /// The last transfer stopped because its reply outgrew `maxReply` (GET only).
    var overflowed: Bool { record.pointee.overflowed != 0 }

    /// Hands the reply buffer over (malloc'd; the caller frees it): spares a copy of a reply that
    /// may be hundreds of megabytes. The exchange starts its next reply from scratch.
    func takeReply() -> (bytes: UnsafeMutablePointer<UInt8>?, count: Int) {
        let taken = (record.pointee.reply, record.pointee.reply_length)
        record.pointee.reply = nil
        record.pointee.reply_length = 0
        record.pointee.reply_capacity = 0
        return taken
    }

    /// The result of a finished transfer as the transport reports it: a resend the guard
    /// refused is `CURLE_SEND_FAIL_REWIND` ("not resent: the server may have processed it").
    func finishedCode(_ code: CURLcode) -> CURLcode {
        record.pointee.requests_issued > 1 && code == CURLE_ABORTED_BY_CALLBACK ? CURLE_SEND_FAIL_REWIND : code
    }

    /// The HTTP status of the final response; 0 when none came.
    var status: Int {
        var status = 0
        return ka_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK ? status : 0
    }

    /// Bytes of request written to a connection: 0 means the server cannot have seen it.
    var requestSize: Int {
        var size = 0
        // Unknown counts as written: "not sent" would let the runner send it again.
        guard ka_easy_getinfo_long(handle, CURLINFO_REQUEST_SIZE, &size) == CURLE_OK else { return 1 }
        // A request issued twice was written at least once, whatever libcurl counts for the second.
        return size == 0 && record.pointee.requests_issued > 1 ? 1 : size
    }

    /// libcurl's message for the failed transfer, when it wrote one.
    var errorDetail: String? {
        withUnsafeBytes(of: &record.pointee.error) { raw in
            let text = String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            return text.isEmpty ? nil : text
        }
    }

    /// The reply bytes kept. Valid after the exchange finished, until it is started again.
    var reply: [UInt8] {
        Array(UnsafeBufferPointer(start: record.pointee.reply, count: record.pointee.reply_length))
    }

    /// The last Retry-After header of the final response, or nil.
    var retryAfter: String? {
        let value = withUnsafeBytes(of: record.pointee.retry_after) {
            String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
        }
        return value.isEmpty ? nil : value
    }

    /// The final response's X-RateLimit-* headers, or nil when it had none usable.
    var rateLimit: RateLimitHeaders? {
        func text<T>(_ field: T) -> String {
            withUnsafeBytes(of: field) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        let record = record.pointee
        // Most servers send none: no strings, no clock, for them.
        if record.ratelimit_limit.0 == 0 && record.ratelimit_remaining.0 == 0 && record.ratelimit_reset.0 == 0 {
            return nil
        }
        return RateLimitHeaders(
            limit: text(record.ratelimit_limit), remaining: text(record.ratelimit_remaining),
            reset: text(record.ratelimit_reset), now: Timestamps.now())
    }
}
