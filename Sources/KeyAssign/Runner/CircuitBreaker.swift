/// Tells a license server that is down from one connection that failed, so that an outage
/// neither burns every row's attempts nor keeps a run hammering a closed port.
///
/// Only requests that provably never left count (`notSent`: refused, DNS, connect timeout,
/// TLS handshake); anything that reached the server, even a 5xx or a reply lost after
/// sending, closes the breaker. After `threshold` such failures in a row the breaker is open:
/// the runner sends one probe at a time, 1, 2, 4 … `maxProbeDelay` s apart. When the server has
/// been unreachable for `window` seconds (`--max-wait`) and a probe at the end of it failed too,
/// the run gives up (exit 69) and leaves its rows for the next run. Pure: times are monotonic
/// seconds passed in; the runner calls it under its lock.
struct CircuitBreaker: Sendable {
    /// What the dispatcher may do now.
    enum Permission: Equatable {
        /// Send up to this many requests.
        case send(Int)
        /// A probe is out: wait for its answer before sending anything else.
        case awaitProbe
        /// Send the next probe no earlier than this.
        case probeAt(Double)
        /// Unreachable for the whole window: stop sending.
        case giveUp
    }

    let threshold: Int
    let window: Double
    let firstProbeDelay: Double
    let maxProbeDelay: Double

    /// Not-sent failures since anything last reached the server.
    private(set) var consecutive = 0
    /// When the current streak of failures began.
    private(set) var unreachableSince: Double?
    private(set) var lastFailureAt: Double?
    /// The last failure's text, for the message that ends the run.
    private(set) var lastError: String?
    private var nextProbeAt: Double = 0
    private var probeDelay: Double

    init(threshold: Int = 5, window: Double, firstProbeDelay: Double = 1, maxProbeDelay: Double = 30) {
        self.threshold = max(1, threshold)
        self.window = max(0, window)
        self.firstProbeDelay = firstProbeDelay
        self.maxProbeDelay = max(firstProbeDelay, maxProbeDelay)
        probeDelay = firstProbeDelay
    }

    var isOpen: Bool { consecutive >= threshold }

    /// Something reached the server (any reply, or a failure after the request was written).
    mutating func reached() {
        consecutive = 0
        unreachableSince = nil
        lastFailureAt = nil
        probeDelay = firstProbeDelay
        nextProbeAt = 0
    }

    mutating func notSent(at now: Double, error: String) {
        if consecutive == 0 { unreachableSince = now }
        consecutive += 1
        lastFailureAt = max(lastFailureAt ?? now, now)
        lastError = error
        if isOpen {
            nextProbeAt = now + probeDelay
            probeDelay = min(maxProbeDelay, probeDelay * 2)
        }
    }

    func permission(now: Double, inFlight: Int) -> Permission {
        guard isOpen, let since = unreachableSince else { return .send(Int.max) }
        let deadline = since + window
        // A failure seen at or after the deadline means the server was still unreachable when
        // the window ended: there is nothing left to wait for.
        if let last = lastFailureAt, last >= deadline { return .giveUp }
        if inFlight > 0 { return .awaitProbe }
        // The last probe goes out when the window ends, not a full delay after it.
        let at = min(nextProbeAt, deadline)
        return now >= at ? .send(1) : .probeAt(at)
    }

    /// How long the server has been unreachable, for messages.
    func unreachableFor(now: Double) -> Double {
        unreachableSince.map { max(0, now - $0) } ?? 0
    }
}
