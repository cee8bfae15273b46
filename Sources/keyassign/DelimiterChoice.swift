import ArgumentParser
import KeyAssign

/// `--delimiter`: detected from each file's header line, or the one given. `comma`,
/// `semicolon`, `pipe` and `\t` are accepted too (`CSVDelimiter(argument:)`).
enum DelimiterChoice: String, CaseIterable, ExpressibleByArgument {
    case auto
    case comma = ","
    case semicolon = ";"
    case tab
    case pipe = "|"

    init?(argument: String) {
        if argument == "auto" {
            self = .auto
            return
        }
        switch CSVDelimiter(argument: argument) {
        case .comma: self = .comma
        case .semicolon: self = .semicolon
        case .tab: self = .tab
        case .pipe: self = .pipe
        case nil: return nil
        }
    }

    static var allValueDescriptions: [String: String] {
        ["auto": "detected from each file's header line", ",": "comma", ";": "semicolon", "tab": "tab (also \\t)",
         "|": "pipe"]
    }

    /// The delimiter for the importer; nil to detect it.
    var csvDelimiter: CSVDelimiter? {
        switch self {
        case .auto: return nil
        case .comma: return .comma
        case .semicolon: return .semicolon
        case .tab: return .tab
        case .pipe: return .pipe
        }
    }
}
