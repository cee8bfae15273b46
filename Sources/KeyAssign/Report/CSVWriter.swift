/// Writes RFC 4180 CSV for people who open it in a spreadsheet.
///
/// Formula injection: a field starting with `=`, `+`, `-`, `@`, tab or CR is run as a
/// formula by Excel, LibreOffice and Google Sheets — a customer name such as
/// `=HYPERLINK(...)` from a web shop would become live in the sales-ops team's sheet.
/// Such fields get a leading `'` (OWASP's advice), unless `raw` is set for machines.
public struct CSVWriter {
    public var raw: Bool
    private var sink: (String) -> Void

    public init(raw: Bool = false, sink: @escaping (String) -> Void) {
        self.raw = raw
        self.sink = sink
    }

    public func writeRow(_ fields: [String?]) {
        var line = ""
        for (index, field) in fields.enumerated() {
            if index > 0 { line += "," }
            line += Self.encode(field ?? "", raw: raw)
        }
        line += "\r\n"
        sink(line)
    }

    static let formulaTriggers: Set<Character> = ["=", "+", "-", "@", "\t", "\r"]

    public static func encode(_ field: String, raw: Bool) -> String {
        var value = field
        if !raw, let first = value.first, formulaTriggers.contains(first) {
            value = "'" + value
        }
        let needsQuotes = value.contains { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == ";" }
            || value.first == " " || value.last == " "
        guard needsQuotes else { return value }
        return "\"" + value.replacingAll("\"", with: "\"\"") + "\""
    }
}

/// JSON text for one value, escaped by hand: `report --format jsonl` writes a line per row,
/// and a million rows through JSONSerialization would dominate the report's time.
public enum JSONText {
    public static func string(_ value: String?) -> String {
        guard let value else { return "null" }
        var out = "\""
        out.reserveCapacity(value.utf8.count + 2)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20 || c.value == 0x2028 || c.value == 0x2029:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
        return out
    }

    public static func number(_ value: Int64?) -> String {
        value.map(String.init) ?? "null"
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        out.reserveCapacity(utf8.count)
        for character in self {
            if character == target { out += replacement } else { out.append(character) }
        }
        return out
    }
}
