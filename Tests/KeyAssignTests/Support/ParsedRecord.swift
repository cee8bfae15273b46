import Foundation
import Testing

@testable import KeyAssign

/// One parsed record, as plain values.
struct ParsedRecord: Equatable, CustomStringConvertible {
    var line: Int
    var fields: [String]
    var malformation: String?
    var raw: String

    var description: String { "\(line): \(fields) \(malformation ?? "") raw=\(raw.debugDescription)" }
}
