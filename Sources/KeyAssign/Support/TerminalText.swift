/// Text from outside (a server's message, an owner name from a listing, a file name, a CSV
/// field) made safe to show on a terminal or in a log line: every control character is
/// written in a visible form, so that an ESC cannot drive the terminal and a newline cannot
/// forge a log line of its own.
///
/// - `\n`, `\r`, `\t` for those three; `\xHH` for the other C0 controls and DEL (`\x1b`,
///   `\x07`); `\u{HHHH}` for C1 controls and for the characters that reorder or split lines
///   without being seen (bidirectional overrides and isolates, U+2028/U+2029).
/// - A backslash stays as it is: text already escaped elsewhere (`\/` in JSON) stays readable,
///   and what matters, that no byte reaches the terminal as a control, holds either way.
///
/// Only for what a person reads (stderr, logs, `history`, `status`, `reconcile`, `import`'s
/// lines). CSV, JSONL and HTML outputs are data with their own escaping and stay exact.
public enum TerminalText {
    /// `text` with every control character in a visible form; at most `limit` characters of
    /// the input are kept (nil: all).
    public static func escape(_ text: String, limit: Int? = nil) -> String {
        let scalars = text.unicodeScalars
        // The usual case, nothing to escape and no limit reached: the text itself, uncopied.
        if scalars.allSatisfy({ !needsEscape($0) }) && (limit.map { scalars.count <= $0 } ?? true) { return text }
        var out = String.UnicodeScalarView()
        var taken = 0
        for scalar in scalars {
            if let limit, taken >= limit { break }
            taken += 1
            guard needsEscape(scalar) else {
                out.append(scalar)
                continue
            }
            switch scalar {
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            case _ where scalar.value < 0x80:
                out.append(contentsOf: ("\\x" + hex(scalar.value, digits: 2)).unicodeScalars)
            default:
                out.append(contentsOf: ("\\u{" + hex(scalar.value, digits: 4) + "}").unicodeScalars)
            }
        }
        return String(out)
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if value < 0x20 || value == 0x7F { return true }
        if value < 0x80 { return false }
        return (0x80...0x9F).contains(value)  // C1 controls (0x9B is a CSI on some terminals)
            || value == 0x061C || value == 0x200E || value == 0x200F  // bidi marks
            || (0x202A...0x202E).contains(value) || (0x2066...0x2069).contains(value)  // bidi overrides, isolates
            || value == 0x2028 || value == 0x2029  // line and paragraph separators
    }

    private static func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
