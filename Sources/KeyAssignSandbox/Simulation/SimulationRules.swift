/// Which row-truth rules the simulator holds the code to.
///
/// `final` is issue 18's ("a row's recorded state is true, or it says that it is unknown"):
/// a row whose attempt may have reached the server never ends `failed`, and absence from a
/// listing (a partial one) never makes a row `rejected`. `current` leaves out what only those
/// rules promise (and the partial listings that test them), so that code with the older rules
/// can still be checked for everything else, and planted defects show against a clean baseline.
public struct SimulationRules: Sendable, Equatable {
    /// Check that no row the server assigned to our buyer ends `failed`.
    public var maybeDeliveredNeverFailed: Bool
    /// Serve listings that leave keys out (and check that absence rejects nothing).
    public var partialListings: Bool

    public static let final = SimulationRules(maybeDeliveredNeverFailed: true, partialListings: true)
    public static let current = SimulationRules(maybeDeliveredNeverFailed: false, partialListings: false)
}
