import Foundation
import Testing

@testable import KeyAssign

@Suite struct IngestReaderTests {
    @Test func quotedFieldsWithDoubledQuotesDelimitersAndLineBreaks() throws {
        let records = try ReaderHarness.parseAllChunkings(
            "key,name,email\n"
                + "K1,\"Dubois, Amélie\",a@x.fr\n"
                + "K2,\"Marco \"\"Il Capo\"\" Bianchi\",m@x.it\n"
                + "K3,\"two\nlines\",t@x.de\n"
                + "K4,\"\",\"\"\n"
                + "K5,\"\"\"\",q@x.de\n"
                + "K6, \"Doe, Jane\"  , j@x.de\n")
        #expect(
            records.map(\.fields) == [
                ["key", "name", "email"],
                ["K1", "Dubois, Amélie", "a@x.fr"],
                ["K2", "Marco \"Il Capo\" Bianchi", "m@x.it"],
                ["K3", "two\nlines", "t@x.de"],
                ["K4", "", ""],
                ["K5", "\"", "q@x.de"],
                ["K6", "Doe, Jane", " j@x.de"],
            ])
        // Physical lines: the record after the two-line field starts on line 6.
        #expect(records.map(\.line) == [1, 2, 3, 4, 6, 7, 8])
        #expect(records[2].raw == "K2,\"Marco \"\"Il Capo\"\" Bianchi\",m@x.it")
        #expect(records.allSatisfy { $0.malformation == nil })
    }

    @Test func lineEndsLFCRLFAndLoneCRGiveTheSameFields() throws {
        let expected = [["a", "b"], ["1", "x y"], ["2", "z\nw"]]
        for eol in ["\n", "\r\n", "\r"] {
            let text = "a,b" + eol + "1,x y" + eol + "2,\"z\nw\"" + eol
            let records = try ReaderHarness.parseAllChunkings(text)
            #expect(records.map(\.fields) == expected, "line end \(eol.debugDescription)")
            #expect(records.map(\.line) == [1, 2, 3])
        }
        // Quoted CRLF inside a field counts as one physical line.
        let records = try ReaderHarness.parseAllChunkings("a,b\r\n1,\"p\r\nq\"\r\n2,r\r\n")
        #expect(records.map(\.fields) == [["a", "b"], ["1", "p\r\nq"], ["2", "r"]])
        #expect(records.map(\.line) == [1, 2, 4])
    }

    @Test func byteOrderMarkIsStrippedFromTheFirstHeader() throws {
        let records = try ReaderHarness.parseAllChunkings("\u{FEFF}Name;Email;License Key\r\nJo;j@x.de;K1\r\n")
        #expect(records.map(\.fields) == [["Name", "Email", "License Key"], ["Jo", "j@x.de", "K1"]])
    }

    @Test func excelSepLineSetsTheDelimiterAndIsSkipped() throws {
        let bytes = Array("sep=|\r\nkey|name,with comma\r\nK1|Doe, Jane\r\n".utf8)
        let parsed = try ReaderHarness.parse(bytes)
        #expect(parsed.delimiter == UInt8(ascii: "|"))
        #expect(parsed.records.map(\.fields) == [["key", "name,with comma"], ["K1", "Doe, Jane"]])
        #expect(parsed.records.map(\.line) == [2, 3])
        // Quoted, as some tools write it, and with a BOM before it.
        let quoted = try ReaderHarness.parse(Array("\u{FEFF}\"sep=;\"\nk;n\n1;2\n".utf8))
        #expect(quoted.records.map(\.fields) == [["k", "n"], ["1", "2"]])
    }

    @Test func trailingEmptyLinesAndNoFinalNewline() throws {
        let records = try ReaderHarness.parseAllChunkings("k,n\n1,a\n\n\r\n2,b\n\n\n")
        #expect(records.map(\.fields) == [["k", "n"], ["1", "a"], ["2", "b"]])
        #expect(records.map(\.line) == [1, 2, 5])
        let noNewline = try ReaderHarness.parseAllChunkings("k,n\n1,a\n2,\"b\"")
        #expect(noNewline.map(\.fields) == [["k", "n"], ["1", "a"], ["2", "b"]])
        let emptyLast = try ReaderHarness.parseAllChunkings("k,n\n1,")
        #expect(emptyLast.map(\.fields) == [["k", "n"], ["1", ""]])
    }

    @Test func delimiterIsDetectedFromTheHeaderLine() throws {
        let cases: [(String, UInt8)] = [
            ("key,name;x\n", UInt8(ascii: ",")),
            ("key;name;\"a,b,c,d\"\n", UInt8(ascii: ";")),
            ("key\tname\temail\n", UInt8(ascii: "\t")),
            ("key|name|email\n", UInt8(ascii: "|")),
            ("key\n", UInt8(ascii: ",")),
            // A quote inside a header field is data, as the parser reads it, not the start of a
            // quoted stretch that would hide the rest of the line (and the data lines) from the count.
            ("license_key|owner 12\" screen|email\nK1|\"Doe, Jane\"|a@example.com\n", UInt8(ascii: "|")),
            ("\"key;\"\"x\"\"\";name;email\n", UInt8(ascii: ";")),
        ]
        for (text, delimiter) in cases {
            #expect(try ReaderHarness.parse(Array(text.utf8)).delimiter == delimiter, "\(text.debugDescription)")
        }
        // A given delimiter wins over detection.
        let given = try ReaderHarness.parse(Array("a;b,c\n".utf8), delimiter: .comma)
        #expect(given.records.map(\.fields) == [["a;b", "c"]])
    }

    @Test func unbalancedQuoteCostsOneRowAndReadingResumes() throws {
        let records = try ReaderHarness.parseAllChunkings("k,n\n1,\"Smith, John\n2,Jane\n3,\"Doe, Jo\"\n")
        // Line 2 opens a quote that line 4 closes, then text follows the closing quote: the
        // record is malformed, reported as its first line, and line 3 is read normally.
        try #require(records.count == 4)
        #expect(records[1].line == 2)
        #expect(records[1].malformation != nil)
        #expect(records[1].raw == "1,\"Smith, John")
        #expect(records[2].fields == ["2", "Jane"])
        #expect(records[2].line == 3)
        #expect(records[3].fields == ["3", "Doe, Jo"])
        #expect(records[3].line == 4)

        let atEnd = try ReaderHarness.parseAllChunkings("k,n\n1,ok\n2,\"never closed\n3,x\n")
        try #require(atEnd.map(\.line) == [1, 2, 3, 4])
        #expect(atEnd[2].malformation?.contains("unbalanced quote") == true)
        #expect(atEnd[3].fields == ["3", "x"])
    }

    @Test func textAfterAClosingQuoteIsMalformed() throws {
        let records = try ReaderHarness.parseAllChunkings("k,n\n\"1\"x,a\n2,b\n")
        try #require(records.count == 3)
        #expect(records[1].malformation?.contains("after a closing quote") == true)
        #expect(records[1].raw == "\"1\"x,a")
        #expect(records[2].fields == ["2", "b"])
        #expect(records[2].line == 3)
    }

    @Test func aMalformedLineAcrossAChunkEdgeIsReportedWholeAndReadingResumesAfterIt() throws {
        // Found by scripts/fuzz: a malformed record was reported before its line end had been
        // read, so its raw text was cut at the chunk edge and the rest of the line was read
        // as a row of its own, one line later, shifting every line number after it. A CR read
        // last before an edge did the same to the LF after it.
        var text = "key,name\n"
        for n in 1...6 { text += "K\(n),\"Name number \(n)\"\n" }
        text += "K7,\"Bad\"quote and a long tail, x\r\nK8,ok\r\n\"K9\"x\rK10,ok\n"
        let bytes = Array(text.utf8)
        let whole = try ReaderHarness.parse(bytes).records
        try #require(whole.map(\.line) == Array(1...11))
        #expect(whole[7].malformation?.contains("after a closing quote") == true)
        #expect(whole[7].raw == "K7,\"Bad\"quote and a long tail, x")
        #expect(whole[8].fields == ["K8", "ok"])
        #expect(whole[9].raw == "\"K9\"x")
        #expect(whole[10].fields == ["K10", "ok"])
        // Buffers smaller than the text (64 bytes plus the chunk), so edges fall everywhere.
        for chunk in 16...48 {
            let chunked = try ReaderHarness.parse(bytes, chunkSize: chunk, maxRecordBytes: 64).records
            #expect(chunked == whole, "chunk size \(chunk)")
        }
    }

    @Test func overlongRecordsAreReportedNotBuffered() throws {
        let long = String(repeating: "x", count: 5000)
        let text = "k,n\n1,\(long)\n2,b\n3,\"\(long)\n\(long)\"\n4,c\n"
        let parsed = try ReaderHarness.parse(Array(text.utf8), chunkSize: 64, maxRecordBytes: 1024).records
        try #require(parsed.count >= 4)
        #expect(parsed[1].malformation?.contains("longer than") == true)
        #expect(parsed[1].line == 2)
        #expect(parsed[2].fields == ["2", "b"])
        #expect(parsed[2].line == 3)
        #expect(parsed[3].malformation != nil)
        #expect(parsed.last?.fields == ["4", "c"])
    }

    @Test func randomBytesNeverCrashTheReaderOrTheImporter() throws {
        var rng = SeededGenerator(state: 0x5EED)
        let alphabet: [UInt8] = Array("ab,;|\t\"\"\r\n\n \u{00}".utf8) + [0xFF, 0xC3, 0xA9, 0xEF, 0xBB, 0xBF]
        let dir = try TemporaryDirectory()
        let db = try Database(path: dir.path + "/fuzz.sqlite")
        for round in 0..<300 {
            let length = Int.random(in: 0...400, using: &rng)
            let bytes: [UInt8] = (0..<length).map { _ in
                Bool.random(using: &rng) ? alphabet.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng)
            }
            for chunk in [16, 31, 4096] {
                let records = try ReaderHarness.parse(bytes, chunkSize: chunk, maxRecordBytes: 64).records
                let lines = records.map(\.line)
                #expect(lines == lines.sorted(), "round \(round)")
            }
            let path = dir.path + "/fuzz-\(round).csv"
            try Data([UInt8]("license_key,name\n".utf8) + bytes).write(to: URL(fileURLWithPath: path))
            let outcome = ImportJob.run(
                [path], options: ImportOptions(databasePath: db.path, lockWait: ImportFixture.lockWait), into: db,
                output: { _ in })
            #expect(outcome.exitStatus == .ok || outcome.exitStatus == .dataError)
        }
    }
}
