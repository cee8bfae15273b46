// The transport's ceiling, for scripts/bench-run.sh: a minimal URLSession loop (no database,
// no verification, no rate limit) POSTing the same form bodies as `keyassign run` to the same
// sandbox, with the same session configuration as AssignClient. It prints requests/s: what
// URLSession (libcurl) itself allows on this machine, to compare with keyassign's rows/s.
//
//   swiftc -O scripts/urlsession-ceiling.swift -o /tmp/urlsession-ceiling
//   /tmp/urlsession-ceiling URL API_KEY REQUESTS CONCURRENCY [SESSIONS]
import Dispatch
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

let args = CommandLine.arguments
guard args.count >= 5, let url = URL(string: args[1] + "/api/v1/assign-license-key"),
      let total = Int(args[3]), let concurrency = Int(args[4]) else {
    FileHandle.standardError.write(Data("usage: urlsession-ceiling URL API_KEY REQUESTS CONCURRENCY [SESSIONS]\n".utf8))
    exit(64)
}
let apiKey = args[2]

// The same glibc malloc settings as `keyassign run` (Sources/KeyAssign/Runner/MallocTuning.swift),
// so that the two figures differ only by keyassign's own work.
@_silgen_name("mallopt") func glibcMallopt(_ option: Int32, _ value: Int32) -> Int32
_ = glibcMallopt(-1, 64 << 20)
_ = glibcMallopt(-2, 16 << 20)
let sessionCount = args.count > 5 ? Int(args[5]) ?? 2 : 2

let configuration = URLSessionConfiguration.ephemeral
configuration.httpMaximumConnectionsPerHost = (concurrency + sessionCount - 1) / sessionCount
configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
configuration.urlCache = nil
configuration.httpCookieStorage = nil
configuration.httpShouldSetCookies = false
configuration.httpCookieAcceptPolicy = .never
configuration.urlCredentialStorage = nil
let delegateQueue = OperationQueue()
delegateQueue.maxConcurrentOperationCount = 1
let sessions = (0..<sessionCount).map { _ in
    URLSession(configuration: configuration, delegate: nil, delegateQueue: delegateQueue)
}

let slots = DispatchSemaphore(value: concurrency)
let done = DispatchGroup()
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var ok = 0
    func add(_ success: Bool) { lock.lock(); if success { ok += 1 }; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return ok }
}
let answered = Counter()
let start = DispatchTime.now()
for i in 0..<total {
    slots.wait()
    done.enter()
    var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: 30)
    request.httpMethod = "POST"
    request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
    request.setValue("Bearer \(apiKey)", forHTTPHeaderField: "Authorization")
    request.httpBody = Data("api_key=\(apiKey)&license_key=ceiling-unknown-\(i)&owner_name=Jane%20Doe".utf8)
    sessions[i % sessionCount].dataTask(with: request) { data, response, _ in
        answered.add((response as? HTTPURLResponse)?.statusCode == 200 && data != nil)
        slots.signal()
        done.leave()
    }.resume()
}
done.wait()
let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
print(String(format: "%.0f %d %.2f", Double(total) / seconds, answered.value, seconds))
