import Synchronization

/// The faults chosen for one request.
struct FaultDecision: Equatable {
    /// Milliseconds to hold the reply (or the drop) back.
    var delayMilliseconds = 0
    var fail5xx = false
    var fail429 = false
    var dropBefore = false
    var dropAfter = false
    var badSignature = false
    var stale = false
    var stringCode = false
    var echoError = false
    var undocumentedCode = false
    var lateReply = false
}

/// Decides faults per request from a seeded generator (SplitMix64), so a seed reproduces the
/// same sequence of decisions for the same order of requests.
final class SandboxFaultDice: Sendable {
    let faults: SandboxConfiguration.Faults
    let seed: UInt64
    private let state: Mutex<UInt64>

    init(_ faults: SandboxConfiguration.Faults, seed: UInt64) {
        self.faults = faults
        self.seed = seed
        state = Mutex(seed)
    }

    var injectsAnything: Bool {
        faults.latency != .none || faults.fail5xx > 0 || faults.fail429 > 0 || faults.dropBefore > 0
            || faults.dropAfter > 0 || faults.badSignature > 0 || faults.stale > 0
            || faults.stringCode > 0 || faults.echoError > 0 || faults.undocumentedCode > 0 || faults.lateReply > 0
    }

    func roll() -> FaultDecision {
        guard injectsAnything else { return FaultDecision() }
        return state.withLock { state in
            func next() -> UInt64 {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                return z ^ (z >> 31)
            }
            // Every probability consumes one draw whatever the others decide, so changing one
            // probability does not reshuffle the decisions of the others.
            func chance(_ probability: Double) -> Bool {
                let draw = Double(next() >> 11) / Double(1 << 53)
                return draw < probability
            }
            var decision = FaultDecision()
            switch faults.latency {
            case .none: _ = next()
            case .fixed(let ms):
                _ = next()
                decision.delayMilliseconds = ms
            case .range(let low, let high):
                decision.delayMilliseconds = low + Int(next() % UInt64(high - low + 1))
            }
            decision.dropBefore = chance(faults.dropBefore)
            decision.fail5xx = chance(faults.fail5xx)
            decision.fail429 = chance(faults.fail429)
            decision.dropAfter = chance(faults.dropAfter)
            decision.badSignature = chance(faults.badSignature)
            decision.stale = chance(faults.stale)
            decision.stringCode = chance(faults.stringCode)
            decision.echoError = chance(faults.echoError)
            decision.undocumentedCode = chance(faults.undocumentedCode)
            // Drawn only when asked for: a seed from before this fault keeps its sequence.
            if faults.lateReply > 0 { decision.lateReply = chance(faults.lateReply) }
            return decision
        }
    }

    /// Whether the listing leaves `key` out (`listingOmit`): decided by the key and the seed
    /// alone, so every listing of one sandbox omits the same keys.
    func omitsFromListing(_ key: String) -> Bool {
        guard faults.listingOmit > 0 else { return false }
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325 ^ seed
        for byte in key.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        hash = (hash ^ (hash >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        hash ^= hash >> 33
        return Double(hash >> 11) / Double(1 << 53) < faults.listingOmit
    }
}
