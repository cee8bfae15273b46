import ArgumentParser
import KeyAssign

/// `--delimiter`: detected from each file's header line, or the one given. The characters
/// themselves (`,` `;` `|` and `\t`) are accepted too (`CSVDelimiter(argument:)`); the choices
/// are listed by name because shell completion scripts cannot hold a bare `;` or `|`.
enum DelimiterChoice: String, CaseIterable, ExpressibleByArgument {
    case auto
    case comma
    case semicolon
    case tab
    case pipe

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
        [
            "auto": "detected from each file's header line", "comma": "',' (also given as ,)",
            "semicolon": "';' (also given as ;)", "tab": "tab (also \\t)", "pipe": "'|' (also given as |)",
        ]
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
