import Foundation
import Testing

@testable import KeyAssign

/// `report`'s byte-level encoders against the String-based rules they replaced: the same
/// bytes out for the same text in, a million rows faster.
@Suite struct RowReportEncodingTests {
    /// The CSV field rule as it was written over Characters (the oracle).
    static func oracleCSV(_ field: String, raw: Bool) -> String {
        var value = field
        let triggers: Set<Character> = ["=", "+", "-", "@", "\t", "\r"]
        if !raw, let first = value.first, triggers.contains(first) { value = "'" + value }
        let needsQuotes =
            value.contains { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == ";" }
            || value.first == " " || value.last == " "
        guard needsQuotes else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// The JSON string rule as it was written over Unicode scalars (the oracle).
    static func oracleJSON(_ value: String?) -> String {
        guard let value else { return "null" }
        var out = "\""
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
        return out + "\""
    }

    static let alphabet: [String] = [
        "a", "Z", "7", " ", ",", "\"", ";", "\n", "\r", "\t", "=", "+", "-", "@", "'",
        "\\", "é", "€", "😀", "\u{2028}", "\u{2029}", "\u{01}", "\u{1F}", "\u{7F}", "</svg>",
    ]

    @Test func fieldEncodingMatchesTheStringRules() {
        var rng = SeededGenerator(state: 14)
        var checked = 0
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...8, using: &rng)
            let text = (0..<length).map { _ in Self.alphabet.randomElement(using: &rng)! }.joined()
            // Over Characters a CR LF pair is one character equal to neither CR nor LF: the
            // old rule missed it (see crLFInsideAFieldIsQuoted); compare everything else.
            if text.unicodeScalars.indices.contains(where: { i in
                text.unicodeScalars[i] == "\r" && text.unicodeScalars.index(after: i) < text.unicodeScalars.endIndex
                    && text.unicodeScalars[text.unicodeScalars.index(after: i)] == "\n"
            }) {
                continue
            }
            #expect(CSVWriter.encode(text, raw: false) == Self.oracleCSV(text, raw: false), "\(text.debugDescription)")
            #expect(CSVWriter.encode(text, raw: true) == Self.oracleCSV(text, raw: true), "\(text.debugDescription)")
            #expect(JSONText.string(text) == Self.oracleJSON(text), "\(text.debugDescription)")
            checked += 1
        }
        #expect(checked > 10_000)
        #expect(JSONText.string(nil) == "null")
    }

    @Test("a CR LF inside a field is quoted (the Character-based rule let it break the line)")
    func crLFInsideAFieldIsQuoted() {
        #expect(CSVWriter.encode("a\r\nb", raw: true) == "\"a\r\nb\"")
        #expect(CSVWriter.encode("\r\n=1+1", raw: false) == "\"'\r\n=1+1\"")
    }

    @Test func bytesThatAreNotUTF8BecomeReplacementCharacters() {
        for bytes: [UInt8] in [
            [0x41, 0xFF, 0x42], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xE2, 0x80], [0xF4, 0x90, 0x80, 0x80],
        ] {
            let expected = String(decoding: bytes, as: UTF8.self)
            var csv: [UInt8] = []
            bytes.withUnsafeBytes { CSVWriter.appendField($0, raw: false, to: &csv) }
            #expect(String(decoding: csv, as: UTF8.self) == Self.oracleCSV(expected, raw: false))
            #expect(csv.contains(0xEF))  // U+FFFD is EF BF BD
            var json: [UInt8] = []
            bytes.withUnsafeBytes { JSONText.appendString($0, to: &json) }
            #expect(String(decoding: json, as: UTF8.self) == Self.oracleJSON(expected))
            #expect(String(validating: json, as: UTF8.self) != nil)
        }
        for valid in ["é", "€", "😀", "\u{10FFFF}", "\u{D7FF}", "\u{E000}"] {
            #expect(
                valid.utf8.withContiguousStorageIfAvailable { UTF8Check.isValid(UnsafeRawBufferPointer($0)) } == true)
        }
    }

    @Test func numbersAreFieldsToo() {
        var out: [UInt8] = []
        for value: Int64 in [0, 7, 801, -5, Int64.max, Int64.min] {
            out.removeAll()
            CSVWriter.appendField(value, raw: false, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == Self.oracleCSV(String(value), raw: false))
        }
    }

    /// The fast path over a real database against the row-by-row path through `ReportRow`.
    @Test func reportOfADatabaseMatchesTheRowByRowRendering() throws {
        let (bench, _) = try ReportCLITests.benchWithAwkwardNames()
        let db = try Database(path: bench.db)
        try db.execute(
            """
            UPDATE work SET state = 'failed', last_code = -3, attempts = 2,
                last_error = 'line one' || char(13) || char(10) || 'line "two";' || char(1) || char(8232) WHERE id % 2 = 0;
            UPDATE work SET last_error = CAST(X'3D41FF42' AS TEXT), email = NULL WHERE id = 1;
            UPDATE work SET owner_name = ' padded ' WHERE id = 3;
            """)
        for (format, raw) in [(ReportFormat.csv, false), (.csv, true), (.jsonl, false)] {
            let path = bench.dir.path + "/fast-\(format)-\(raw)"
            let output = try TextOutput(path: path)
            let written = try RowReport.write(from: db, states: [], format: format, raw: raw, to: output)
            try output.finish()
            var expected =
                format == .csv
                ? ReportRow.fieldNames.map { Self.oracleCSV($0, raw: raw) }.joined(separator: ",") + "\r\n" : ""
            var rows = 0
            try RowReport.forEachRow(in: db, states: []) { row in
                rows += 1
                switch format {
                case .csv:
                    expected += row.csvFields.map { Self.oracleCSV($0 ?? "", raw: raw) }.joined(separator: ",") + "\r\n"
                case .jsonl:
                    let j = Self.oracleJSON
                    expected +=
                        "{\"license_key\":\(j(row.licenseKey)),\"owner_name\":\(j(row.ownerName)),\"email\":\(j(row.email)),"
                        + "\"state\":\(j(row.state)),\"code\":\(row.code.map(String.init) ?? "null"),\"attempts\":\(row.attempts),"
                        + "\"last_error\":\(j(row.lastError)),\"source_file\":\(j(row.sourceFile)),"
                        + "\"source_line\":\(row.sourceLine),\"updated_at\":\(j(row.updatedAt))}\n"
                }
            }
            #expect(written == 5 && rows == 5)
            let actual = try String(contentsOfFile: path, encoding: .utf8)
            #expect(actual == expected, "\(format) raw=\(raw)")
        }
    }
}
