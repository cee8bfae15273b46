import CCurl
import Dispatch
import Foundation
import Synchronization

/// Drives every request of a run through one libcurl multi handle, on one long-lived Dispatch
/// work item: libcurl's multi API is single-threaded by design, and one thread doing nothing
/// but socket work keeps up with far more than the server allows. Other threads only append to
/// `pending` and wake the loop; replies are handed to a serial queue so that verifying one (an
/// RSA check) never delays the sockets.
///
/// What other threads touch is in `shared`, behind a `Mutex`, and the compiler checks it. The
/// rest (`multi`, and the exchanges the loop owns) is touched by the loop's thread only, which
/// the compiler cannot see: hence `@unchecked`.
final class TransferLoop: @unchecked Sendable {
    typealias Completion = @Sendable (TransportResult) -> Void

    private struct Pending {
        let header: String
        let body: [UInt8]
        let completion: Completion
    }

    /// The multi handle (CURLM *).
    private let multi: UnsafeMutableRawPointer
    private let settings: CurlExchange.Settings
    private let maxExchanges: Int
    private let replies = DispatchQueue(label: "keyassign.transport.replies")
    private let stopped = DispatchSemaphore(value: 0)

    /// What callers and the loop share. The mutex also guards `multi` against being woken after
    /// the loop freed it: every wakeup happens under it, and the loop sets `freed` under it
    /// before freeing.
    private struct Shared {
        var pending: [Pending] = []
        var stopping = false
        var cancelling = false
        var freed = false
    }
    private let shared = Mutex(Shared())

    // Touched by the loop only.
    private var idle: [CurlExchange] = []
    private var created = 0
    /// Keyed by easy handle, which is what the multi handle's messages name.
    private var running: [UnsafeMutableRawPointer: (exchange: CurlExchange, completion: Completion)] = [:]

    /// Fails with `KeyAssignError(.config)` when the system's libcurl cannot be used or refuses
    /// an option: the first exchange is set up here, so that no run starts with a transport that
    /// cannot send.
    init(url: String, headers: [String], timeout: Double, caFile: String?, maxConnections: Int, maxReply: Int) throws {
        try LibCurl.initialize()
        maxExchanges = max(1, maxConnections)
        settings = try CurlExchange.Settings(
            url: url, headers: headers,
            timeoutMilliseconds: Int(max(1, (timeout * 1000).rounded())),
            caFile: caFile, maxReply: maxReply)
        guard let made = curl_multi_init() else {
            throw KeyAssignError(.ioError, "cannot set up libcurl (out of memory)")
        }
        do {
            try LibCurl.check(
                ka_multi_setopt_long(made, CURLMOPT_MAX_HOST_CONNECTIONS, maxExchanges),
                setting: "CURLMOPT_MAX_HOST_CONNECTIONS")
            try LibCurl.check(
                ka_multi_setopt_long(made, CURLMOPT_MAXCONNECTS, maxExchanges), setting: "CURLMOPT_MAXCONNECTS")
            idle = [try CurlExchange(settings)]
            created = 1
        } catch {
            curl_multi_cleanup(made)
            throw error
        }
        multi = made
        DispatchQueue(label: "keyassign.transport").async { [self] in run() }
    }

    func enqueue(header: String, body: [UInt8], completion: @escaping Completion) {
        let request = Pending(header: header, body: body, completion: completion)
        let accepted = shared.withLock { shared in
            guard !shared.stopping else { return false }
            shared.pending.append(request)
            curl_multi_wakeup(multi)
            return true
        }
        if !accepted {
            replies.async { completion(.notSent("cancelled: the transport is closed")) }
        }
    }

    func cancelAll() {
        shared.withLock { shared in
            shared.cancelling = true
            if !shared.freed { curl_multi_wakeup(multi) }
        }
    }

    /// Finishes what is running, then frees libcurl's handles. Returns once the loop has ended.
    func stop() {
        let first = shared.withLock { shared in
            let first = !shared.stopping
            shared.stopping = true
            if first && !shared.freed { curl_multi_wakeup(multi) }
            return first
        }
        if first {
            stopped.wait()
            // Replies already handed over run before whoever stopped the transport goes on.
            replies.sync {}
        }
    }

    private func run() {
        while true {
            let free = idle.count + (maxExchanges - created)
            let (cancel, stop, batch, drained) = shared.withLock { shared in
                let cancel = shared.cancelling
                shared.cancelling = false
                var batch: [Pending] = []
                if cancel {
                    swap(&batch, &shared.pending)
                } else if !shared.pending.isEmpty && free > 0 {
                    let count = min(free, shared.pending.count)
                    batch = Array(shared.pending.prefix(count))
                    shared.pending.removeFirst(count)
                }
                // Once stopping, nothing more is enqueued: this stays true.
                return (cancel, shared.stopping, batch, shared.pending.isEmpty)
            }

            if cancel {
                abortRunning()
                for request in batch { deliver(.notSent("cancelled before it was sent"), to: request.completion) }
            } else {
                for request in batch { start(request) }
            }
            if stop && running.isEmpty && drained { break }

            // Does what can be done without blocking, then waits up to a second for sockets, a
            // timer or a wakeup.
            var code = curl_multi_poll(multi, nil, 0, 1000, nil)
            var stillRunning: Int32 = 0
            if code == CURLM_OK { code = curl_multi_perform(multi, &stillRunning) }
            if code != CURLM_OK {
                // Only a libcurl bug or exhausted memory ends here: what was running is unknown.
                let why = String(cString: curl_multi_strerror(code))
                for (handle, (exchange, completion)) in running {
                    curl_multi_remove_handle(multi, handle)
                    idle.append(exchange)
                    deliver(.maybeSent("transport failure: \(why)"), to: completion)
                }
                running.removeAll()
            }
            var waiting: Int32 = 0
            while let message = curl_multi_info_read(multi, &waiting) {
                guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle else { continue }
                let result = message.pointee.data.result
                // The message is gone once its handle leaves the multi handle.
                curl_multi_remove_handle(multi, handle)
                guard let (exchange, completion) = running.removeValue(forKey: handle) else { continue }
                deliver(finished(exchange, curlCode: exchange.finishedCode(result)), to: completion)
                idle.append(exchange)
            }
        }
        shared.withLock { $0.freed = true }
        idle.removeAll()
        curl_multi_cleanup(multi)
        stopped.signal()
    }

    private func start(_ request: Pending) {
        let exchange: CurlExchange
        if let reused = idle.popLast() {
            exchange = reused
        } else {
            do {
                exchange = try CurlExchange(settings)
                created += 1
            } catch {
                deliver(.notSent("cannot start a request: \(error)"), to: request.completion)
                return
            }
        }
        let code = exchange.start(on: multi, header: request.header, body: request.body)
        if code == CURLE_OK {
            running[exchange.handle] = (exchange, request.completion)
        } else {
            idle.append(exchange)
            deliver(.notSent(AssignClient.describe(curlCode: Int32(bitPattern: code.rawValue))), to: request.completion)
        }
    }

    private func abortRunning() {
        for (handle, (exchange, completion)) in running {
            curl_multi_remove_handle(multi, handle)
            let sent = exchange.requestSize > 0
            idle.append(exchange)
            deliver(
                sent
                    ? .maybeSent("cancelled (curl \(CURLE_ABORTED_BY_CALLBACK.rawValue))")
                    : .notSent("cancelled before it was sent"), to: completion)
        }
        running.removeAll()
    }

    private func finished(_ exchange: CurlExchange, curlCode: CURLcode) -> TransportResult {
        AssignClient.result(
            curlCode: Int32(bitPattern: curlCode.rawValue), status: exchange.status,
            requestBytes: exchange.requestSize, reply: exchange.reply, retryAfter: exchange.retryAfter,
            rateLimit: exchange.rateLimit,
            detail: exchange.errorDetail)
    }

    private func deliver(_ result: TransportResult, to completion: @escaping Completion) {
        replies.async { completion(result) }
    }
}
