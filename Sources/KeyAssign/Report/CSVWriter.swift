/// Writes RFC 4180 CSV for people who open it in a spreadsheet.
///
/// Formula injection: a field starting with `=`, `+`, `-`, `@`, tab or CR is run as a
/// formula by Excel, LibreOffice and Google Sheets — a customer name such as
/// `=HYPERLINK(...)` from a web shop would become live in the sales-ops team's sheet.
/// Such fields get a leading `'` (OWASP's advice), unless `raw` is set for machines.
///
/// The rules work on UTF-8 bytes (every byte they look at is ASCII), so that `report` can
/// encode a million rows straight from SQLite's buffers without a String per field.
///
/// Excel on Windows opens a double-clicked CSV in the ANSI code page unless it starts with a
/// UTF-8 byte-order mark (`Jürgen` would show as `JÃ¼rgen`), and splits fields at the list
/// separator of the Windows locale (`;` in German or French): files meant for spreadsheets
/// get the BOM, and `--delimiter semicolon` for those locales. A field holding the delimiter,
/// a quote or a line break is quoted, so a line break stays inside its cell.
public final class CSVWriter {
    public var raw: Bool
    public let delimiter: UInt8
    private var sink: (String) -> Void
    /// Written before the first row, once.
    private var pendingMark: Bool

    /// U+FEFF in UTF-8.
    public static let byteOrderMark = "\u{FEFF}"

    public init(
        raw: Bool = false, delimiter: CSVDelimiter = .comma, byteOrderMark: Bool = false,
        sink: @escaping (String) -> Void
    ) {
        self.raw = raw
        self.delimiter = delimiter.byte
        self.pendingMark = byteOrderMark
        self.sink = sink
    }

    public func writeRow(_ fields: [String?]) {
        var line: [UInt8] = []
        line.reserveCapacity(128)
        if pendingMark {
            line.append(contentsOf: [0xEF, 0xBB, 0xBF])
            pendingMark = false
        }
        for (index, field) in fields.enumerated() {
            if index > 0 { line.append(delimiter) }
            var text = field ?? ""
            text.withUTF8 { Self.appendField(UnsafeRawBufferPointer($0), raw: raw, delimiter: delimiter, to: &line) }
        }
        line.append(13)
        line.append(10)
        sink(String(decoding: line, as: UTF8.self))
    }

    public static func encode(_ field: String, raw: Bool) -> String {
        var out: [UInt8] = []
        var text = field
        text.withUTF8 { appendField(UnsafeRawBufferPointer($0), raw: raw, to: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    @inline(__always)
    static func isFormulaTrigger(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "=") || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "@")
            || byte == 9 || byte == 13
    }

    /// Appends one field, neutralised (unless `raw`) and quoted when it must be. Bytes that
    /// are not valid UTF-8 become U+FFFD, as reading them into a String would.
    public static func appendField(
        _ field: UnsafeRawBufferPointer, raw: Bool, delimiter: UInt8 = UInt8(ascii: ","),
        to out: inout [UInt8]
    ) {
        guard let first = field.first else { return }
        var needsQuotes = false
        var ascii = true
        for byte in field {
            if byte >= 0x80 {
                ascii = false
            } else if byte == UInt8(ascii: ",") || byte == UInt8(ascii: "\"") || byte == 10 || byte == 13
                || byte == UInt8(ascii: ";")
                || byte == delimiter
            {
                needsQuotes = true
            }
        }
        if !ascii && !UTF8Check.isValid(field) {
            var repaired = String(decoding: field, as: UTF8.self)
            repaired.withUTF8 { appendField(UnsafeRawBufferPointer($0), raw: raw, delimiter: delimiter, to: &out) }
            return
        }
        let prefix = !raw && isFormulaTrigger(first)
        // A leading or trailing space is lost by some readers unless quoted (the prefix
        // makes the first character a quote mark instead).
        if (!prefix && first == 0x20) || field.last == 0x20 { needsQuotes = true }
        if needsQuotes { out.append(UInt8(ascii: "\"")) }
        if prefix { out.append(UInt8(ascii: "'")) }
        if needsQuotes {
            // Copied in runs up to and including each quote, which is then doubled.
            var runStart = 0
            for index in 0..<field.count where field[index] == UInt8(ascii: "\"") {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: field[runStart...index]))
                out.append(UInt8(ascii: "\""))
                runStart = index + 1
            }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: field[runStart...]))
            out.append(UInt8(ascii: "\""))
        } else {
            out.append(contentsOf: field)
        }
    }

    /// Appends a whole number as a field (through the same rules: a negative one starts with `-`).
    public static func appendField(
        _ value: Int64, raw: Bool, delimiter: UInt8 = UInt8(ascii: ","), to out: inout [UInt8]
    ) {
        withDecimal(value) { appendField($0, raw: raw, delimiter: delimiter, to: &out) }
    }
}

/// `value` in decimal ASCII, without a String.
@inline(__always)
func withDecimal<R>(_ value: Int64, _ body: (UnsafeRawBufferPointer) -> R) -> R {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
        var magnitude = value.magnitude
        var start = 20
        repeat {
            start -= 1
            buffer[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
            magnitude /= 10
        } while magnitude > 0
        if value < 0 {
            start -= 1
            buffer[start] = UInt8(ascii: "-")
        }
        return body(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[start...]))
    }
}

/// JSON text for one value, escaped by hand: `report --format jsonl` writes a line per row,
/// and a million rows through JSONSerialization would dominate the report's time.
public enum JSONText {
    public static func string(_ value: String?) -> String {
        guard var value else { return "null" }
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count + 2)
        value.withUTF8 { appendString(UnsafeRawBufferPointer($0), to: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    public static func number(_ value: Int64?) -> String {
        value.map(String.init) ?? "null"
    }

    static let hexDigits = Array("0123456789abcdef".utf8)

    /// Appends `"…"` with `"`, `\`, control characters and U+2028/U+2029 (line breaks to
    /// JavaScript) escaped; bytes that are not valid UTF-8 become U+FFFD.
    public static func appendString(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        var ascii = true
        for byte in bytes where byte >= 0x80 {
            ascii = false
            break
        }
        if !ascii && !UTF8Check.isValid(bytes) {
            var repaired = String(decoding: bytes, as: UTF8.self)
            repaired.withUTF8 { appendString(UnsafeRawBufferPointer($0), to: &out) }
            return
        }
        out.append(UInt8(ascii: "\""))
        // Runs of bytes that need no escape are copied whole: most fields are all of one run.
        var index = 0
        var runStart = 0
        let count = bytes.count
        while index < count {
            let byte = bytes[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == 0xE2 else {
                index += 1
                continue
            }
            if byte == 0xE2
                && !(index + 2 < count && bytes[index + 1] == 0x80
                    && (bytes[index + 2] == 0xA8 || bytes[index + 2] == 0xA9))
            {
                index += 1
                continue
            }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<index]))
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            case 10:
                out.append(UInt8(ascii: "\\"))
                out.append(UInt8(ascii: "n"))
            case 13:
                out.append(UInt8(ascii: "\\"))
                out.append(UInt8(ascii: "r"))
            case 9:
                out.append(UInt8(ascii: "\\"))
                out.append(UInt8(ascii: "t"))
            case 0xE2:
                out.append(contentsOf: [
                    UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "2"), UInt8(ascii: "0"),
                    UInt8(ascii: "2"), bytes[index + 2] == 0xA8 ? UInt8(ascii: "8") : UInt8(ascii: "9"),
                ])
                index += 2
            default:
                out.append(contentsOf: [
                    UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                    hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xf)],
                ])
            }
            index += 1
            runStart = index
        }
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<count]))
        out.append(UInt8(ascii: "\""))
    }

    /// Appends `null` or the escaped string.
    public static func appendString(_ bytes: UnsafeRawBufferPointer?, to out: inout [UInt8]) {
        guard let bytes else { return out.append(contentsOf: nullBytes) }
        appendString(bytes, to: &out)
    }

    static let nullBytes = Array("null".utf8)
}

/// Whether bytes are well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
/// above U+10FFFF), so that text from SQLite can be copied as it is when it is.
enum UTF8Check {
    static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        let count = bytes.count
        while index < count {
            let lead = bytes[index]
            if lead < 0x80 {
                index += 1
                continue
            }
            let length: Int
            var lower: UInt8 = 0x80
            var upper: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0:
                length = 3
                lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED:
                length = 3
                upper = 0x9F
            case 0xF0:
                length = 4
                lower = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4:
                length = 4
                upper = 0x8F
            default: return false
            }
            guard index + length <= count else { return false }
            let second = bytes[index + 1]
            guard second >= lower && second <= upper else { return false }
            var next = index + 2
            while next < index + length {
                guard bytes[next] & 0xC0 == 0x80 else { return false }
                next += 1
            }
            index += length
        }
        return true
    }
}
