import Foundation
import KeyAssign
import Synchronization

/// The parts of an HTTP request the sandbox looks at.
struct SandboxRequest {
    var method: String
    /// The target without its query string.
    var path: String
    var contentType: String?
    var authorization: String?
    var idempotencyKey: String?
    var body: [UInt8]
    /// Every header as received (the echo-error fault shows them all, as debug pages do).
    var headers: [(String, String)] = []
}

/// What the HTTP layer must do with a request.
enum SandboxAction: Equatable {
    case reply(SandboxReply)
    /// Close the connection without replying, after `delayMilliseconds`.
    case drop(delayMilliseconds: Int)
}

struct SandboxReply: Equatable {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]
    var delayMilliseconds = 0

    static func == (lhs: SandboxReply, rhs: SandboxReply) -> Bool {
        lhs.status == rhs.status && lhs.body == rhs.body && lhs.delayMilliseconds == rhs.delayMilliseconds
            && lhs.headers.map { "\($0.0):\($0.1)" } == rhs.headers.map { "\($0.0):\($0.1)" }
    }

    static func plain(_ status: Int, _ text: String, headers: [(String, String)] = []) -> SandboxReply {
        SandboxReply(
            status: status, headers: [("Content-Type", "text/plain; charset=utf-8")] + headers,
            body: Array((text + "\n").utf8))
    }

    static func json(_ status: Int, _ body: [UInt8], headers: [(String, String)] = []) -> SandboxReply {
        SandboxReply(status: status, headers: [("Content-Type", "application/json")] + headers, body: body)
    }

    /// `seconds` nil: a bare 429, with neither a Retry-After header nor a `retry_after` field.
    static func tooManyRequests(retryAfter seconds: Int?) -> SandboxReply {
        guard let seconds else { return plain(429, "Too Many Requests") }
        return json(429, Array("{\"retry_after\":\(seconds)}".utf8), headers: [("Retry-After", "\(seconds)")])
    }
}

/// The license server's behaviour, apart from HTTP plumbing: authentication, assignment,
/// the ledger, the rate limit and fault injection. Thread-safe; every event loop calls it.
final class SandboxService: Sendable {
    static let assignPath = "/api/v1/assign-license-key"
    static let ledgerPath = "/__sandbox/ledger"
    static let listingPath = ServerEndpoint.listingPath

    private struct State {
        var inventory: Set<String>
        /// The inventory in listing order (ids are positions + 1).
        var order: [String]
        var assigned: [String: AssignmentRecord]
        var ledger = SandboxLedger()
        var limiter: SandboxRateLimiter?
        var quotas: SandboxQuotas
        let log: AssignmentLog
    }

    let apiKey: String
    private let replies: SignedReplyMaker
    let dice: SandboxFaultDice
    private let waf: WAFRule?
    private let listingMode: SandboxConfiguration.ListingMode
    private let hostileText: Bool
    private let createdAt = Timestamps.nowISO8601()
    private let state: Mutex<State>

    /// Reloads the assignments already in `assignmentsPath` and appends new ones there.
    init(
        apiKey: String, inventory: [String], assignmentsPath: String,
        replies: SignedReplyMaker, dice: SandboxFaultDice, rateLimit: SandboxConfiguration.RateLimit?,
        quotas: [RateLimit] = [], listingMode: SandboxConfiguration.ListingMode = .signed,
        hostileText: Bool = false
    ) throws {
        let previous = try AssignmentLog.load(path: assignmentsPath)
        let log = try AssignmentLog(path: assignmentsPath)
        self.apiKey = apiKey
        self.replies = replies
        self.dice = dice
        waf = try dice.faults.wafBlock.map { try WAFRule(pattern: $0) }
        self.listingMode = listingMode
        self.hostileText = hostileText
        var unique: Set<String> = []
        let order = inventory.filter { unique.insert($0).inserted }
        var initial = State(
            inventory: unique, order: order, assigned: [:],
            limiter: rateLimit.map { SandboxRateLimiter($0, now: Timestamps.monotonic()) },
            quotas: SandboxQuotas(quotas), log: log)
        for record in previous {
            if initial.inventory.insert(record.licenseKey).inserted { initial.order.append(record.licenseKey) }
            initial.assigned[record.licenseKey] = record
            initial.ledger.keys[record.licenseKey, default: SandboxLedger.KeyEntry()].record(record)
        }
        state = Mutex(initial)
    }

    func ledger() -> SandboxLedger {
        state.withLock { $0.ledger }
    }

    /// Marks `key` assigned as if a request had done it (the demo's keys sold earlier).
    func preassign(key: String, ownerName: String?, email: String?) throws {
        try state.withLock { state in
            guard state.assigned[key] == nil else { return }
            let record = AssignmentRecord(
                licenseKey: key, ownerName: ownerName, email: email,
                assignedAt: Timestamps.nowISO8601())
            try state.log.append(record)
            if state.inventory.insert(key).inserted { state.order.append(key) }
            state.assigned[key] = record
            state.ledger.keys[key, default: SandboxLedger.KeyEntry()].record(record)
        }
    }

    func closeLog() {
        state.withLock { $0.log.closeFile() }
    }

    func handle(_ request: SandboxRequest) -> SandboxAction {
        switch (request.path, request.method) {
        case (Self.assignPath, "POST"):
            return assign(request)
        case (Self.listingPath, "GET"):
            return listing(request)
        case (Self.listingPath, _):
            return .reply(.plain(405, "Method Not Allowed", headers: [("Allow", "GET")]))
        case (Self.ledgerPath, "GET"):
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            guard let body = try? encoder.encode(ledger()) else {
                return .reply(.plain(500, "Internal Server Error"))
            }
            return .reply(.json(200, Array(body)))
        case (Self.assignPath, _):
            return .reply(.plain(405, "Method Not Allowed", headers: [("Allow", "POST")]))
        case (Self.ledgerPath, _):
            return .reply(.plain(405, "Method Not Allowed", headers: [("Allow", "GET")]))
        default:
            return .reply(.plain(404, "Not Found"))
        }
    }

    /// The whole inventory as the server lists it, signed with the global key. Built outside
    /// the state lock from a snapshot (copy-on-write: the snapshot costs nothing until the next
    /// assignment), so a 200,000-key listing does not stall the assign calls.
    private func listing(_ request: SandboxRequest) -> SandboxAction {
        let authorized = isAuthorized(field: nil, header: request.authorization)
        let snapshot = state.withLock { state -> (order: [String], assigned: [String: AssignmentRecord]) in
            state.ledger.listingRequests += 1
            return (state.order, state.assigned)
        }
        if listingMode == .absent { return .reply(.plain(404, "Not Found")) }
        let now = Int(Timestamps.now().rounded(.down))
        do {
            guard authorized else {
                let envelope = try replies.envelope(code: 100, message: "Invalid API key", timestamp: now)
                return .reply(.json(401, envelope))
            }
            let listed =
                dice.faults.listingOmit > 0 ? snapshot.order.filter { !dice.omitsFromListing($0) } : snapshot.order
            if listed.count < snapshot.order.count {
                let omitted = snapshot.order.count - listed.count
                state.withLock {
                    $0.ledger.faults.partialListings += 1
                    $0.ledger.faults.keysOmitted += omitted
                }
            }
            let keys = listed.map { SandboxListing.Key(licenseKey: $0, assignment: snapshot.assigned[$0]) }
            let payload = SandboxListing.payload(keys, createdAt: createdAt, timestamp: now)
            if let hostile = try SandboxHostileListing.reply(
                listingMode, request: request, apiKey: apiKey,
                payload: payload, replies: replies)
            {
                return .reply(hostile)
            }
            var reply = SandboxReply.json(
                200, try replies.envelope(payload: payload, corruptSignature: listingMode == .forged))
            reply.delayMilliseconds = dice.faults.listingDelayMilliseconds
            return .reply(reply)
        } catch {
            return .reply(.plain(500, "Internal Server Error: cannot sign the listing: \(error)"))
        }
    }

    private enum Outcome {
        case rateLimited(Int)
        case fault429, fault5xx, dropBefore, echoError, wafBlocked
        case signed(code: Int, assignedNow: Bool)
        case persistFailed(String)
    }

    private func assign(_ request: SandboxRequest) -> SandboxAction {
        let fields = AssignRequestFields(contentType: request.contentType, body: request.body)
        let licenseKey = fields["license_key"].flatMap { $0.isEmpty ? nil : $0 }
        let authorized = isAuthorized(field: fields["api_key"], header: request.authorization)
        let decision = dice.roll()
        let now = Timestamps.now()

        // The quota's X-RateLimit-* headers, sent with whatever reply the request gets.
        var quotaHeaders: [(String, String)] = []
        let outcome: Outcome = state.withLock { state in
            state.ledger.totals.requests += 1
            if decision.delayMilliseconds > 0 { state.ledger.faults.latency += 1 }
            if let licenseKey {
                let alreadyAssigned = state.assigned[licenseKey] != nil
                // Mutated in place: copying the entry out would copy its array on every append.
                state.ledger.keys[licenseKey, default: SandboxLedger.KeyEntry()].requests += 1
                if alreadyAssigned { state.ledger.keys[licenseKey]?.requestsAfterAssignment += 1 }
                if let idempotencyKey = request.idempotencyKey {
                    state.ledger.keys[licenseKey]?.idempotencyKeys.append(idempotencyKey)
                }
            }
            // The firewall stands in front of everything else, the limiter included.
            if let waf, waf.blocks(ownerName: fields["owner_name"], email: fields["email"]) {
                state.ledger.faults.wafBlocked += 1
                return .wafBlocked
            }
            if let retryAfter = state.limiter?.take(now: Timestamps.monotonic()) {
                state.ledger.rateLimited += 1
                return .rateLimited(retryAfter)
            }
            if !state.quotas.isEmpty {
                let decision = state.quotas.take(now: now)
                quotaHeaders = decision.headers
                if let retryAfter = decision.retryAfter {
                    state.ledger.rateLimited += 1
                    return .rateLimited(retryAfter)
                }
            }
            if decision.dropBefore {
                state.ledger.faults.dropBefore += 1
                return .dropBefore
            }
            if decision.fail5xx {
                state.ledger.faults.fail5xx += 1
                return .fault5xx
            }
            if decision.fail429 {
                state.ledger.faults.fail429 += 1
                return .fault429
            }
            if decision.echoError {
                state.ledger.faults.echoError += 1
                return .echoError
            }
            guard authorized else { return .signed(code: 100, assignedNow: false) }
            guard let licenseKey, state.inventory.contains(licenseKey), state.assigned[licenseKey] == nil else {
                return .signed(code: 801, assignedNow: false)
            }
            let record = AssignmentRecord(
                licenseKey: licenseKey, ownerName: fields["owner_name"],
                email: fields["email"], assignedAt: Timestamps.iso8601(now))
            do {
                try state.log.append(record)
            } catch {
                return .persistFailed("\(error)")
            }
            state.assigned[licenseKey] = record
            state.ledger.keys[licenseKey, default: SandboxLedger.KeyEntry()].record(record)
            state.ledger.totals.assigned += 1
            return .signed(code: 800, assignedNow: true)
        }

        let action = act(on: outcome, request: request, fields: fields, decision: decision, now: now)
        guard !quotaHeaders.isEmpty, case .reply(var reply) = action else { return action }
        reply.headers += quotaHeaders
        return .reply(reply)
    }

    /// The reply (or the drop) an outcome of `assign` gets.
    private func act(
        on outcome: Outcome, request: SandboxRequest, fields: AssignRequestFields,
        decision: FaultDecision, now: Double
    ) -> SandboxAction {
        let delay = decision.delayMilliseconds
        switch outcome {
        case .rateLimited(let seconds):
            return .reply(withDelay(.tooManyRequests(retryAfter: seconds), delay))
        case .fault429:
            return .reply(withDelay(.tooManyRequests(retryAfter: dice.faults.retryAfter429), delay))
        case .wafBlocked:
            return .reply(
                withDelay(
                    SandboxReply(status: 403, headers: [("Content-Type", "text/html")], body: WAFRule.page),
                    delay))
        case .fault5xx:
            return .reply(withDelay(.plain(503, "Service Unavailable"), delay))
        case .dropBefore:
            return .drop(delayMilliseconds: delay)
        case .echoError:
            return .reply(withDelay(SandboxDebugPage.reply(for: request, fields: fields), delay))
        case .persistFailed(let message):
            return .reply(withDelay(.plain(500, "Internal Server Error: \(message)"), delay))
        case .signed(var code, _):
            if decision.dropAfter {
                state.withLock { $0.ledger.faults.dropAfter += 1 }
                return .drop(delayMilliseconds: delay)
            }
            if decision.undocumentedCode && code != 100 {
                state.withLock { $0.ledger.faults.undocumentedCode += 1 }
                code = 899
            }
            var message =
                code == 800
                ? "License key assigned"
                : code == 801
                    ? "Invalid or already assigned license key"
                    : code == 899 ? "Unexpected state" : "Invalid API key"
            if hostileText { message = SandboxHostileText.message(message) }
            let timestamp = Int(now.rounded(.down)) - (decision.stale ? 3600 : 0)
            let envelope: [UInt8]
            do {
                envelope = try replies.envelope(
                    code: code, message: message, timestamp: timestamp,
                    corruptSignature: decision.badSignature,
                    codeAsString: decision.stringCode)
            } catch {
                return .reply(withDelay(.plain(500, "Internal Server Error: cannot sign the reply: \(error)"), delay))
            }
            var held = delay
            if decision.lateReply && code != 100 {
                held += dice.faults.lateReplyMilliseconds
            }
            state.withLock { state in
                if held > delay { state.ledger.faults.lateReply += 1 }
                state.ledger.totals.repliesByCode[String(code), default: 0] += 1
                if decision.badSignature { state.ledger.faults.badSignature += 1 }
                if decision.stale { state.ledger.faults.stale += 1 }
                if decision.stringCode { state.ledger.faults.stringCode += 1 }
            }
            return .reply(withDelay(.json(code == 100 ? 401 : 200, envelope), held))
        }
    }

    private func withDelay(_ reply: SandboxReply, _ milliseconds: Int) -> SandboxReply {
        var reply = reply
        reply.delayMilliseconds = milliseconds
        return reply
    }

    /// Every API key the request carries (field and Bearer header) must be ours, and there
    /// must be at least one.
    private func isAuthorized(field: String?, header: String?) -> Bool {
        var presented: [String] = []
        if let field, !field.isEmpty { presented.append(field) }
        if let header {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                presented.append(parts[1].trimmingWhitespace())
            } else {
                return false
            }
        }
        return !presented.isEmpty && presented.allSatisfy { Self.constantTimeEquals($0, apiKey) }
    }

    private static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for index in x.indices { difference |= x[index] ^ y[index] }
        return difference == 0
    }
}

extension SandboxLedger.KeyEntry {
    mutating func record(_ assignment: AssignmentRecord) {
        assigned = true
        assignedAt = assignment.assignedAt
        ownerName = assignment.ownerName
        email = assignment.email
    }
}
