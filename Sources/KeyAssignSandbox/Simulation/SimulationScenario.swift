/// One simulated stretch of nights, drawn from a seed: the table, the run's flags, the server's
/// and the network's faults, crash points and clock jumps. Every number the simulation uses
/// comes from here or from the seeded generator that made it.
public struct SimulationScenario: Sendable {
    public var seed: UInt64
    public var rows: Int
    /// Keys the server already holds for other buyers, and keys it does not know.
    public var heldByOthers: Int
    public var unknownKeys: Int
    public var concurrency: Int
    /// 0: unlimited.
    public var rate: Double
    public var burst: Int
    public var maxAttempts: Int
    public var timeout: Double
    public var maxWait: Double
    public var backoffBase: Double
    public var backoffCap: Double
    /// Nights with faults before the last, clean one.
    public var faultyNights: Int
    public var faults: Faults

    public struct Faults: Sendable {
        /// One-way network delay: a base and a jitter (seconds).
        public var delay: Double
        public var jitter: Double
        /// A request lost on the way (the client times out; the server never saw it).
        public var lossRequest: Double
        /// A reply lost on the way (the server acted; the client times out).
        public var lossReply: Double
        /// A reply that comes after --timeout (a slow server that still assigns).
        public var lateReply: Double
        /// A packet duplicated (TCP drops the copy: the server acts once).
        public var duplicate: Double
        /// The server answers 503 before acting, or after acting.
        public var fail5xxBefore: Double
        public var fail5xxAfter: Double
        /// The server answers 429, with a Retry-After header or without (exponential pause).
        public var rateLimited: Double
        public var retryAfter: Double?
        /// A reply whose signature fails (the server acted).
        public var badSignature: Double
        /// Windows (start offset in the night, length) in which nothing connects.
        public var partitions: [(start: Double, length: Double)]
        /// The listing: answered at all, and the share of keys a partial one leaves out.
        public var listingAvailable: Bool
        public var listingOmits: Double
        /// Per action of the client: the process dies (kill -9) and restarts from the database.
        public var crash: Double
        /// Per action: the wall clock jumps by up to this many seconds either way.
        public var clockJump: Double
        public var clockJumpSize: Double
        /// Per action: a SIGTERM arrives.
        public var signal: Double
        /// How often a result waiting in the recorder is committed after a reply.
        public var flush: Double
    }

    /// `rules`: which rules the faults may exercise (see `SimulationRules`).
    public init(seed: UInt64, rules: SimulationRules) {
        var random = SimulationRandom(seed: seed)
        self.seed = seed
        rows = random.int(3...24)
        heldByOthers = random.chance(0.3) ? random.int(1...3) : 0
        unknownKeys = random.chance(0.2) ? random.int(1...2) : 0
        concurrency = random.int(1...8)
        rate = random.chance(0.25) ? 0 : random.uniform(2...40)
        burst = random.int(2...6)
        maxAttempts = random.int(1...5)
        timeout = random.uniform(0.5...6)
        maxWait = random.uniform(5...90)
        backoffBase = random.uniform(0.05...1)
        backoffCap = backoffBase + random.uniform(0...20)
        faultyNights = random.int(1...3)
        let slow = random.chance(0.15)
        let delay = slow ? random.uniform(0.2...2) : random.uniform(0.0005...0.05)
        var partitions: [(Double, Double)] = []
        for _ in 0..<random.int(0...2) where random.chance(0.5) {
            partitions.append((random.uniform(0...20), random.uniform(0.5...30)))
        }
        faults = Faults(
            delay: delay, jitter: random.uniform(0...delay),
            lossRequest: random.chance(0.4) ? random.uniform(0...0.15) : 0,
            lossReply: random.chance(0.4) ? random.uniform(0...0.15) : 0,
            lateReply: random.chance(0.3) ? random.uniform(0...0.2) : 0,
            duplicate: random.chance(0.2) ? random.uniform(0...0.1) : 0,
            fail5xxBefore: random.chance(0.3) ? random.uniform(0...0.2) : 0,
            fail5xxAfter: random.chance(0.3) ? random.uniform(0...0.1) : 0,
            rateLimited: random.chance(0.3) ? random.uniform(0...0.3) : 0,
            retryAfter: random.chance(0.5) ? random.uniform(0.2...4).rounded(.up) : nil,
            badSignature: random.chance(0.15) ? random.uniform(0...0.1) : 0,
            partitions: partitions,
            listingAvailable: random.chance(0.8),
            listingOmits: rules.partialListings && random.chance(0.2) ? random.uniform(0.1...0.6) : 0,
            crash: random.chance(0.5) ? random.uniform(0...0.05) : 0,
            clockJump: random.chance(0.2) ? random.uniform(0...0.02) : 0,
            clockJumpSize: random.uniform(1...200),
            signal: random.chance(0.1) ? random.uniform(0...0.01) : 0,
            flush: random.uniform(0.1...1))
    }

    /// The flags `keyassign run` would get.
    func options(databasePath: String) -> RunOptionsValues {
        RunOptionsValues(
            databasePath: databasePath, rate: rate, burst: burst, concurrency: concurrency,
            maxAttempts: maxAttempts, timeout: timeout, maxWait: maxWait,
            backoffBase: backoffBase, backoffCap: backoffCap)
    }

    public var summary: String {
        "\(rows) rows (\(heldByOthers) held by others, \(unknownKeys) unknown), concurrency \(concurrency), rate \(rate == 0 ? "unlimited" : String(format: "%.1f", rate)), burst \(burst), max-attempts \(maxAttempts), timeout \(String(format: "%.2f", timeout)) s, max-wait \(Int(maxWait)) s, \(faultyNights) faulty night(s) then a clean one; delay \(String(format: "%.3f", faults.delay)) s, loss \(String(format: "%.2f/%.2f", faults.lossRequest, faults.lossReply)), late \(String(format: "%.2f", faults.lateReply)), 5xx \(String(format: "%.2f/%.2f", faults.fail5xxBefore, faults.fail5xxAfter)), 429 \(String(format: "%.2f", faults.rateLimited)) (Retry-After \(faults.retryAfter.map { "\(Int($0)) s" } ?? "none")), bad signature \(String(format: "%.2f", faults.badSignature)), \(faults.partitions.count) partition(s), listing \(faults.listingAvailable ? "yes" : "no")\(faults.listingOmits > 0 ? String(format: " omitting %.0f%%", faults.listingOmits * 100) : ""), crash \(String(format: "%.3f", faults.crash)), clock jumps \(String(format: "%.3f", faults.clockJump)), signals \(String(format: "%.3f", faults.signal))"
    }
}

/// The flags of one simulated run, before they become `RunOptions`.
struct RunOptionsValues {
    var databasePath: String
    var rate: Double
    var burst: Int
    var concurrency: Int
    var maxAttempts: Int
    var timeout: Double
    var maxWait: Double
    var backoffBase: Double
    var backoffCap: Double
}
