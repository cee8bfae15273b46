/// Why `JSONScanner` refused a text, and where.
struct JSONParseError: Error, Sendable {
    let offset: Int
    let reason: String
    var description: String { "\(reason) at byte \(offset)" }
}
