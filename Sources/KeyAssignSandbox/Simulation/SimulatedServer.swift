import KeyAssign

/// The license server, with the sandbox's rules and signing but no sockets: it holds the
/// inventory and who holds each key (the truth the simulator checks rows against), answers an
/// assign request as the Key Manager does (800 assigns an available key, 801 for anything
/// else, every reply signed with the real RSA key through `SignedReplyMaker`), and lists its
/// inventory as `GET /api/v1/get-license-keys` does (`SandboxListing`).
final class SimulatedServer {
    struct Holder: Equatable {
        var ownerName: String?
        var email: String?
        /// True (simulated) time of the assignment.
        var at: Double
    }

    /// What the server did with one request.
    enum Handling {
        /// Answered without acting (429, a 503 before acting).
        case refused(TransportResult)
        /// Acted (assigned, or refused with 801), then answered this (maybe not the signed reply).
        case acted(code: Int, reply: TransportResult)
    }

    private(set) var order: [String]
    private var inventory: Set<String>
    private(set) var holders: [String: Holder] = [:]
    private let replies: SignedReplyMaker
    private let createdAt: String

    init(inventory: [String], replies: SignedReplyMaker, createdAt: Double) {
        order = inventory
        self.inventory = Set(inventory)
        self.replies = replies
        self.createdAt = Timestamps.iso8601(createdAt)
    }

    /// A key sold to someone else before the night (the demo's "sold earlier").
    func preassign(_ key: String, ownerName: String, email: String, at: Double) {
        holders[key] = Holder(ownerName: ownerName, email: email, at: at)
    }

    func assign(
        _ request: AssignRequest, now: Double, faults: SimulationScenario.Faults,
        random: inout SimulationRandom
    ) -> Handling {
        if random.chance(faults.rateLimited) {
            let header = faults.retryAfter.map { String(Int($0)) }
            return .refused(.response(status: 429, retryAfter: header, body: Array("Too Many Requests".utf8)))
        }
        if random.chance(faults.fail5xxBefore) {
            return .refused(.response(status: 503, retryAfter: nil, body: Array("Service Unavailable".utf8)))
        }
        let code: Int
        if inventory.contains(request.licenseKey) && holders[request.licenseKey] == nil {
            holders[request.licenseKey] = Holder(ownerName: request.ownerName, email: request.email, at: now)
            code = 800
        } else {
            code = 801
        }
        if random.chance(faults.fail5xxAfter) {
            return .acted(
                code: code, reply: .response(status: 503, retryAfter: nil, body: Array("Service Unavailable".utf8)))
        }
        let message = code == 800 ? "License key assigned" : "Invalid or already assigned license key"
        let corrupt = random.chance(faults.badSignature)
        let body =
            (try? replies.envelope(
                code: code, message: message, timestamp: Int(now.rounded(.down)),
                corruptSignature: corrupt)) ?? []
        return .acted(code: code, reply: .response(status: 200, retryAfter: nil, body: body))
    }

    /// The signed listing at `now`, leaving out each key with probability `omit` (a partial
    /// listing: one product's, a page, a proxy's cut).
    func listing(now: Double, omit: Double, random: inout SimulationRandom) -> [UInt8] {
        var keys: [SandboxListing.Key] = []
        for key in order where !(omit > 0 && random.chance(omit)) {
            let holder = holders[key]
            keys.append(
                SandboxListing.Key(
                    licenseKey: key,
                    assignment: holder.map {
                        AssignmentRecord(
                            licenseKey: key, ownerName: $0.ownerName, email: $0.email,
                            assignedAt: Timestamps.iso8601($0.at))
                    }))
        }
        let payload = SandboxListing.payload(keys, createdAt: createdAt, timestamp: Int(now.rounded(.down)))
        return (try? replies.envelope(payload: payload, corruptSignature: false)) ?? []
    }

    /// Whether the server holds `key` for this buyer (by email, as the reconcile rules match).
    func holdsForBuyer(_ key: String, email: String?) -> Bool {
        guard let holder = holders[key], let email else { return false }
        return holder.email?.lowercased() == email.lowercased()
    }
}
