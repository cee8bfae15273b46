/// Text made safe for an HTML page: every value in `report --html` that comes from a CSV
/// export or the database (names, emails, keys, file names, server messages) is untrusted.
public enum HTMLText {
    /// Escapes the five characters that can end a text node or an attribute value, so the
    /// result is inert both between tags and inside a double- or single-quoted attribute,
    /// in HTML and in the inline SVG alike (a name like `</svg><script>` stays text).
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            // Control characters have no business on the page; NUL in particular is
            // rewritten by the parser. Show that something was there.
            case let c where c.value < 0x20 && c != "\n" && c != "\t": out += "\u{FFFD}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
