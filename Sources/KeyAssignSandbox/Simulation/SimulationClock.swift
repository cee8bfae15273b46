import KeyAssign
import Synchronization

/// A scenario's simulated time, as the `RunClock` the parts of the run that read a clock
/// themselves (`RunReconciliation`) are given: the world moves it, they read it. The client's
/// monotonic clock is true time; its wall clock is true time plus the jumps so far.
final class SimulationClock: RunClock {
    private struct Reading {
        var now: Double
        var wallOffset: Double
    }

    private let reading: Mutex<Reading>

    init(now: Double) {
        reading = Mutex(Reading(now: now, wallOffset: 0))
    }

    /// True time (Unix seconds).
    var now: Double {
        get { reading.withLock { $0.now } }
        set { reading.withLock { $0.now = newValue } }
    }

    /// How far the client's wall clock is from true time (clock jumps move it).
    var wallOffset: Double {
        get { reading.withLock { $0.wallOffset } }
        set { reading.withLock { $0.wallOffset = newValue } }
    }

    func monotonic() -> Double { now }

    func wall() -> Double { reading.withLock { $0.now + $0.wallOffset } }
}
