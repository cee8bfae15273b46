import ArgumentParser
import KeyAssign

/// `report --delimiter`: the field separator of the CSV keyassign writes. Excel splits a
/// double-clicked CSV at the Windows locale's list separator, which is `;` wherever the
/// decimal separator is a comma (German, French, Spanish, Italian, Dutch …).
enum ReportDelimiterChoice: String, CaseIterable, ExpressibleByArgument {
    case comma
    case semicolon
    case tab

    init?(argument: String) {
        switch CSVDelimiter(argument: argument) {
        case .comma: self = .comma
        case .semicolon: self = .semicolon
        case .tab: self = .tab
        case .pipe, nil: return nil
        }
    }

    static var allValueDescriptions: [String: String] {
        [
            "comma": "',' (also given as ,): Excel in English locales, and programs",
            "semicolon":
                "';' (also given as ;): Excel in German, French, Spanish and other locales whose decimal separator is a comma",
            "tab": "tab (also \\t)",
        ]
    }

    var csvDelimiter: CSVDelimiter {
        switch self {
        case .comma: .comma
        case .semicolon: .semicolon
        case .tab: .tab
        }
    }
}
