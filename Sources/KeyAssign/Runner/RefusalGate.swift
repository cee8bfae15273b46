/// Decides whether unsigned 401/403/407 refusals are each their own row's problem or the whole
/// run's.
///
/// The license server signs its own refusals (codes 100–103, 150), and those stop the run at
/// once. An unsigned refusal comes from something in front of it: a web application firewall
/// that dislikes one customer's name, or a proxy, gateway or IP filter that refuses everything.
/// The two look alike on one row, so each unsigned refusal is held (its row stays `in_flight`)
/// until the run learns which it is:
/// - a verified reply from the license server arrives: requests do get through, so every held
///   refusal is its own row's (`retry`, in the end `failed`, with the reason);
/// - `threshold` distinct rows in a row are refused with no verified reply between them: every
///   request is being refused, so the run stops (exit 3) and the held rows go back to `pending`;
/// - nothing more can arrive (nothing else to send or in flight): their rows' problem if the
///   license server answered anything earlier in the run, else the run's.
///
/// Pure and generic over what is held; the runner calls it under its lock.
struct RefusalGate<Item> {
    enum Decision {
        case hold
        /// Every request is refused: stop the run; these rows go back to pending.
        case stop([Item])
    }

    let threshold: Int
    private(set) var held: [Item] = []
    /// A verified reply came back in this run: the API key and the path to the server work.
    private(set) var serverAnswered = false

    init(threshold: Int = 10) {
        self.threshold = max(1, threshold)
    }

    mutating func refused(_ item: Item) -> Decision {
        held.append(item)
        guard held.count >= threshold else { return .hold }
        defer { held.removeAll() }
        return .stop(held)
    }

    /// A verified reply: the held refusals were each their own row's. Returns them.
    mutating func verifiedReply() -> [Item] {
        serverAnswered = true
        defer { held.removeAll() }
        return held
    }

    /// Nothing more will come to decide: the held items, and whether they stop the run.
    mutating func settle() -> (items: [Item], stopsRun: Bool) {
        defer { held.removeAll() }
        return (held, !held.isEmpty && !serverAnswered)
    }
}
extension RefusalGate: Sendable where Item: Sendable {}
