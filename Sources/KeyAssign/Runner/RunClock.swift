/// The clocks a run reads, injected so that the simulator can run the same decisions on
/// simulated time: monotonic seconds for pacing, pauses and waits, wall-clock Unix seconds for
/// what is stored (`next_attempt_at`, attempt times) and for signed timestamps.
package protocol RunClock: Sendable {
    func monotonic() -> Double
    func wall() -> Double
}

/// The process's own clocks.
struct SystemRunClock: RunClock {
    func monotonic() -> Double { Timestamps.monotonic() }
    func wall() -> Double { Timestamps.now() }
}
