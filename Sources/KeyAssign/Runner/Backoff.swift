/// Exponential backoff with full jitter: a delay drawn uniformly from [0, min(cap, base·2^(n−1))]
/// so that rows failing together do not come back together.
struct Backoff: Sendable {
    var base: Double = 1
    var cap: Double = 60

    func delay(afterAttempt attempt: Int) -> Double {
        var generator = SystemRandomNumberGenerator()
        return delay(afterAttempt: attempt, using: &generator)
    }

    /// The same draw from a given generator (the simulator's seeded one).
    func delay<G: RandomNumberGenerator>(afterAttempt attempt: Int, using generator: inout G) -> Double {
        let exponent = Double(max(0, min(attempt - 1, 30)))
        let ceiling = min(cap, base * pow2(exponent))
        return ceiling <= 0 ? 0 : Double.random(in: 0...ceiling, using: &generator)
    }

    private func pow2(_ x: Double) -> Double {
        var result = 1.0
        var i = 0.0
        while i < x {
            result *= 2
            i += 1
        }
        return result
    }
}
