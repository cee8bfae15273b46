import CCurl
import Dispatch
import Foundation

/// Drives every request of a run through one libcurl multi handle, on one long-lived Dispatch
/// work item: libcurl's multi API is single-threaded by design, and one thread doing nothing
/// but socket work keeps up with far more than the server allows. Other threads only append to
/// `pending` and wake the loop; replies are handed to a serial queue so that verifying one
/// (~30 µs of RSA) never delays the sockets.
final class TransferLoop: @unchecked Sendable {
    typealias Completion = @Sendable (TransportResult) -> Void

    private struct Pending {
        let header: String
        let body: [UInt8]
        let completion: Completion
    }

    private let multi: OpaquePointer
    private let maxExchanges: Int
    private let replies = DispatchQueue(label: "keyassign.transport.replies")
    private let stopped = DispatchSemaphore(value: 0)

    /// Guards the fields below, and `multi` against being woken after the loop freed it: every
    /// wakeup happens under the lock, and the loop sets `freed` under it before freeing.
    private let lock = NSLock()
    private var pending: [Pending] = []
    private var stopping = false
    private var cancelling = false
    private var freed = false

    // Touched by the loop only.
    private var idle: [OpaquePointer] = []
    private var created = 0
    private var running: [OpaquePointer: Completion] = [:]

    init(url: String, headers: [String], timeout: Double, caFile: String?, maxConnections: Int, maxReply: Int,
         unrewindableBody: Bool) throws {
        var message = [CChar](repeating: 0, count: 512)
        guard ka_curl_load(&message, message.count) == 0 else {
            throw KeyAssignError(.config, String(nulTerminated: message))
        }
        let made: OpaquePointer? = withCStrings(headers) { headerPointers in
            url.withCString { urlPointer in
                withOptionalCString(caFile) { caPointer in
                    var settings = ka_transport_settings(
                        url: urlPointer, headers: headerPointers.baseAddress, header_count: Int32(headers.count),
                        timeout_ms: Int(max(1, (timeout * 1000).rounded())), connect_timeout_ms: 0,
                        ca_file: caPointer, max_reply: maxReply, unrewindable_body: unrewindableBody ? 1 : 0)
                    return ka_multi_new(&settings, max(1, maxConnections))
                }
            }
        }
        guard let made else { throw KeyAssignError(.ioError, "cannot set up libcurl (out of memory)") }
        multi = made
        maxExchanges = max(1, maxConnections)
        DispatchQueue(label: "keyassign.transport").async { [self] in run() }
    }

    func enqueue(header: String, body: [UInt8], completion: @escaping Completion) {
        lock.lock()
        let accepted = !stopping
        if accepted {
            pending.append(Pending(header: header, body: body, completion: completion))
            ka_multi_wakeup(multi)
        }
        lock.unlock()
        if !accepted {
            replies.async { completion(.notSent("cancelled: the transport is closed")) }
        }
    }

    func cancelAll() {
        lock.lock()
        cancelling = true
        if !freed { ka_multi_wakeup(multi) }
        lock.unlock()
    }

    /// Finishes what is running, then frees libcurl's handles. Returns once the loop has ended.
    func stop() {
        lock.lock()
        let first = !stopping
        stopping = true
        if first && !freed { ka_multi_wakeup(multi) }
        lock.unlock()
        if first {
            stopped.wait()
            // Replies already handed over run before whoever stopped the transport goes on.
            replies.sync {}
        }
    }

    private func run() {
        var message = [CChar](repeating: 0, count: 256)
        while true {
            lock.lock()
            let cancel = cancelling
            cancelling = false
            let stop = stopping
            let free = idle.count + (maxExchanges - created)
            var batch: [Pending] = []
            if cancel {
                batch = pending
                pending.removeAll()
            } else if !pending.isEmpty && free > 0 {
                let count = min(free, pending.count)
                batch = Array(pending.prefix(count))
                pending.removeFirst(count)
            }
            // Once stopping, nothing more is enqueued: this stays true.
            let drained = pending.isEmpty
            lock.unlock()

            if cancel {
                abortRunning()
                for request in batch { deliver(.notSent("cancelled before it was sent"), to: request.completion) }
            } else {
                for request in batch { start(request) }
            }
            if stop && running.isEmpty && drained { break }

            if ka_multi_run(multi, 1000, &message, message.count) < 0 {
                // Only a libcurl bug or exhausted memory ends here: what was running is unknown.
                let why = String(nulTerminated: message)
                for (exchange, completion) in running {
                    ka_exchange_abort(multi, exchange)
                    idle.append(exchange)
                    deliver(.maybeSent("transport failure: \(why)"), to: completion)
                }
                running.removeAll()
            }
            var code: Int32 = 0
            while let exchange = ka_multi_next_done(multi, &code) {
                guard let completion = running.removeValue(forKey: exchange) else { continue }
                deliver(finished(exchange, curlCode: code), to: completion)
                idle.append(exchange)
            }
        }
        lock.lock()
        freed = true
        lock.unlock()
        for exchange in idle { ka_exchange_free(exchange) }
        idle.removeAll()
        ka_multi_free(multi)
        stopped.signal()
    }

    private func start(_ request: Pending) {
        guard let exchange = idle.popLast() ?? newExchange() else {
            deliver(.notSent("cannot start a request (out of memory)"), to: request.completion)
            return
        }
        let code = request.header.withCString { header in
            request.body.withUnsafeBytes { body in
                ka_exchange_start(multi, exchange, header, body.baseAddress, body.count)
            }
        }
        if code == 0 {
            running[exchange] = request.completion
        } else {
            idle.append(exchange)
            deliver(.notSent(AssignClient.describe(curlCode: code)), to: request.completion)
        }
    }

    private func newExchange() -> OpaquePointer? {
        guard let exchange = ka_exchange_new(multi) else { return nil }
        created += 1
        return exchange
    }

    private func abortRunning() {
        for (exchange, completion) in running {
            ka_exchange_abort(multi, exchange)
            let sent = ka_exchange_request_size(exchange) > 0
            idle.append(exchange)
            deliver(sent ? .maybeSent("cancelled (curl 42)") : .notSent("cancelled before it was sent"), to: completion)
        }
        running.removeAll()
    }

    private func finished(_ exchange: OpaquePointer, curlCode: Int32) -> TransportResult {
        var length = 0
        let bytes = ka_exchange_reply(exchange, &length)
        let reply = bytes.map { Array(UnsafeBufferPointer(start: $0, count: length)) } ?? []
        let retryAfter = ka_exchange_retry_after(exchange).map { String(cString: $0) }
        let detail = ka_exchange_error(exchange).map { String(cString: $0) }
        return AssignClient.result(curlCode: curlCode, status: Int(ka_exchange_status(exchange)),
                                   requestBytes: Int(ka_exchange_request_size(exchange)), reply: reply,
                                   retryAfter: retryAfter, detail: detail)
    }

    private func deliver(_ result: TransportResult, to completion: @escaping Completion) {
        replies.async { completion(result) }
    }
}

private func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let string else { return body(nil) }
    return string.withCString { body($0) }
}

/// NUL-terminated copies of `strings`, valid during `body`.
private func withCStrings<R>(_ strings: [String], _ body: (UnsafeBufferPointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    let pointers = copies.map { UnsafePointer($0) }
    return pointers.withUnsafeBufferPointer { body($0) }
}

private extension String {
    /// The text of a C message buffer, up to its first NUL.
    init(nulTerminated buffer: [CChar]) {
        let end = buffer.firstIndex(of: 0) ?? buffer.endIndex
        self.init(decoding: buffer[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
