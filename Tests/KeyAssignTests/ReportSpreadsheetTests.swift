import Foundation
import Testing

@testable import KeyAssign

/// Issue 20, item 7: the files meant for spreadsheets open right in Excel. Each is read back
/// the way Excel opens a double-clicked CSV: UTF-8 only after a byte-order mark (else the
/// ANSI code page, Windows-1252 in western locales), fields split at the locale's list
/// separator, quoted fields holding separators, quotes and line breaks.
@Suite struct ReportSpreadsheetTests {
    /// Excel's reading of a CSV file opened by double-click.
    static func excelOpen(_ bytes: [UInt8], listSeparator: Character) -> [[String]] {
        let text: String
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
            text = String(decoding: bytes.dropFirst(3), as: UTF8.self)
        } else {
            // Windows-1252 agrees with Latin-1 for every byte these files hold outside 0x80–0x9F.
            text = String(bytes.map { Character(Unicode.Scalar($0)) })
        }
        var records: [[String]] = []
        var record: [String] = []
        var field = ""
        var quoted = false
        var characters = Array(text)
        characters.append("\n")
        var index = 0
        while index < characters.count {
            let c = characters[index]
            if quoted {
                if c == "\"" {
                    if index + 1 < characters.count && characters[index + 1] == "\"" {
                        field.append("\"")
                        index += 1
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(c)
                }
            } else if c == "\"" && field.isEmpty {
                quoted = true
            } else if c == listSeparator {
                record.append(field)
                field = ""
            } else if c == "\r\n" || c == "\n" {
                record.append(field)
                field = ""
                if record != [""] { records.append(record) }
                record = []
            } else {
                field.append(c)
            }
            index += 1
        }
        return records
    }

    private static func database() throws -> (TemporaryDirectory, String) {
        let dir = try TemporaryDirectory()
        let db = dir.path + "/k.sqlite"
        let file = dir.path + "/night.csv"
        try Data(
            """
            license_key,owner_name,email\r
            K-1,Jürgen Müller,j@example.de\r
            K-2,"Chloé; Dubois",c@example.fr\r
            K-3,"=1+1",x@example.com\r
            K-4,"Line\r
            Break",l@example.com\r

            """.utf8
        ).write(to: URL(fileURLWithPath: file))
        #expect(try CLI.run(["import", "--db", db, file]).status == 0)
        // The report reads the table: these rows stand for a night's results.
        let database = try Database(path: db, create: false)
        try database.execute("UPDATE work SET state = 'assigned', last_code = 800 WHERE license_key IN ('K-1', 'K-2')")
        try database.execute("UPDATE work SET state = 'failed', last_error = 'gave up' WHERE license_key = 'K-3'")
        return (dir, db)
    }

    @Test func splitFilesOpenRightInExcelInASemicolonLocale() throws {
        let (dir, db) = try Self.database()
        let split = dir.path + "/split"
        let result = try CLI.run(["report", "--db", db, "--split", split, "--delimiter", "semicolon"])
        #expect(result.status == 0, "\(result.stderr)")
        let success = Self.excelOpen(
            Array(try Data(contentsOf: URL(fileURLWithPath: split + "/success.csv"))), listSeparator: ";")
        #expect(success.first == SplitReport.successHeader)
        #expect(success.dropFirst().map { $0[1] } == ["Jürgen Müller", "Chloé; Dubois"])
        let errors = Self.excelOpen(
            Array(try Data(contentsOf: URL(fileURLWithPath: split + "/errors.csv"))), listSeparator: ";")
        #expect(errors.first == SplitReport.errorsHeader)
        #expect(errors.count == 3, "\(errors)")
        #expect(errors.allSatisfy { $0.count == SplitReport.errorsHeader.count })
        // The invalid row's original text keeps its line break inside one cell.
        #expect(errors.last?.last == "K-4,\"Line\r\nBreak\",l@example.com")
        #expect(errors[1][5] == "'=1+1")

        // The comma default opens right in an English locale too.
        #expect(try CLI.run(["report", "--db", db, "--split", split]).status == 0)
        let english = Self.excelOpen(
            Array(try Data(contentsOf: URL(fileURLWithPath: split + "/success.csv"))), listSeparator: ",")
        #expect(english.dropFirst().map { $0[1] } == ["Jürgen Müller", "Chloé; Dubois"])
    }

    @Test func reportCSVHasTheMarkAndRawStaysByteExact() throws {
        let (dir, db) = try Self.database()
        defer { withExtendedLifetime(dir) {} }
        let csv = try CLI.run(["report", "--db", db, "--state", "assigned", "--delimiter", ";"])
        #expect(csv.status == 0, "\(csv.stderr)")
        let cells = Self.excelOpen(Array(csv.stdout.utf8), listSeparator: ";")
        #expect(cells.first == ReportRow.fieldNames)
        #expect(cells.dropFirst().map { $0[1] } == ["Jürgen Müller", "Chloé; Dubois"])
        let invalid = try CLI.run(["report", "--db", db, "--invalid"])
        #expect(invalid.stdout.hasPrefix("\u{FEFF}source_file,"))

        // --raw: for programs; the bytes as before, no mark, no leading '.
        let raw = try CLI.run(["report", "--db", db, "--state", "assigned", "--state", "failed", "--raw"])
        let lines = raw.stdout.components(separatedBy: "\r\n")
        #expect(lines[0] == ReportRow.fieldNames.joined(separator: ","))
        #expect(lines[1].hasPrefix("K-1,Jürgen Müller,j@example.de,assigned,800,0,,"))
        #expect(lines[2].hasPrefix("K-2,\"Chloé; Dubois\",c@example.fr,assigned,800,0,,"))
        #expect(lines[3].hasPrefix("K-3,=1+1,x@example.com,failed,,0,gave up,"))
        #expect(try CLI.run(["report", "--db", db, "--format", "jsonl", "--delimiter", ";"]).status == 64)
    }
}
