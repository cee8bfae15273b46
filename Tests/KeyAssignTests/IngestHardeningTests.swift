import Foundation
import Testing

@testable import KeyAssign

/// What sales systems and upload tools really deliver, through the real `keyassign import`
/// and `sync` on real files: over-long records, files still in transfer, FIFOs, and exports
/// that are not UTF-8.
@Suite struct IngestHardeningTests {
    // MARK: Helpers

    private func write(_ path: String, _ bytes: [UInt8], ageSeconds: Double? = 600) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        if let ageSeconds { try age(path, ageSeconds) }
    }

    /// Sets the file's modification time `seconds` into the past (as if written then).
    private func age(_ path: String, _ seconds: Double) throws {
        let date = Date().addingTimeInterval(-seconds)
        try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: path)
    }

    /// The rows `sql` selects, `columns` columns each, as text.
    private func query(_ db: String, _ sql: String, columns: Int32 = 1) throws -> [[String]] {
        let database = try Database(path: db, create: false)
        let statement = try database.prepare(sql)
        var rows: [[String]] = []
        while try statement.step() {
            rows.append((0..<columns).map { statement.string($0) ?? "NULL" })
        }
        return rows
    }

    private func count(_ db: String, _ sql: String) throws -> Int {
        Int(try Database(path: db, create: false).scalarInt(sql) ?? -1)
    }

    // MARK: 1. Limits

    /// Records around the 1 MiB limit and the 256 KiB chunk, and the band just above 1 MiB
    /// that overran the batch arena (SIGSEGV): over the limit is an invalid row naming it,
    /// at or under it imports, and the rest of the file imports either way.
    @Test func recordsOverTheLimitAreInvalidRowsAndTheRestImports() throws {
        let dir = try TemporaryDirectory()
        let db = dir.path + "/k.sqlite"
        let limit = CSVReader.defaultMaxRecordBytes
        let chunk = CSVReader.defaultChunkSize
        var text = "license_key,owner_name,email,note\n"
        var expectedQueued = ["K0"]
        var expectedTooLong: [Int] = []
        text += "K0,Ann,ann@example.com,first\n"
        var line = 3
        // A valid row whose record (without its line end) is exactly `length` bytes long.
        for (index, length) in [
            limit - 1, limit, limit + 1, limit + 2, limit + chunk - 1, limit + chunk, limit + chunk + 1,
            1_150_000, 1_300_000, 2 * limit + 4097,
        ].enumerated() {
            let prefix = "N\(index),Bo,bo@example.com,"
            text += prefix + String(repeating: "n", count: length - prefix.utf8.count) + "\n"
            if length <= limit { expectedQueued.append("N\(index)") } else { expectedTooLong.append(line) }
            line += 1
        }
        // The case: a 1,150,000-character license key (CRLF, and quoted with a line break).
        text += String(repeating: "k", count: 1_150_000) + ",Cy,cy@example.com,x\r\n"
        expectedTooLong.append(line)
        line += 1
        text +=
            "\"" + String(repeating: "q", count: 700_000) + "\n" + String(repeating: "q", count: 700_000)
            + "\",Di,di@example.com,x\n"
        // Reading resumes after its first line (as for any malformed record): the second,
        // read as a row of its own, has a 700,001-byte key, over the key's bound.
        expectedTooLong.append(line)
        line += 2
        // A key over its own bound, in a short record.
        text += String(repeating: "z", count: 257) + ",Ed,ed@example.com,x\n"
        let keyLine = line
        line += 1
        text += "K9,Flo,flo@example.com,last"  // no final newline
        expectedQueued.append("K9")
        let path = dir.path + "/big.csv"
        try write(path, Array(text.utf8))

        let result = try CLI.run([
            "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, path,
        ])
        #expect(result.status == 0, "\(result.status) \(result.stderr)")
        #expect(
            result.stdout.contains("record longer than the limit of \(limit) bytes"), "\(result.stdout.prefix(2000))")
        let queued = try query(db, "SELECT license_key FROM work ORDER BY source_line").map { $0[0] }
        #expect(queued == expectedQueued)
        let invalid = try query(
            db, "SELECT source_line, reason, length(raw) FROM invalid_rows ORDER BY source_line", columns: 3)
        let tooLong = invalid.filter { $0[1].contains("record longer than the limit of \(limit) bytes") }
        #expect(tooLong.map { Int($0[0]) } == expectedTooLong.map { Int?($0) })
        #expect(tooLong.allSatisfy { (Int($0[2]) ?? .max) <= 1024 }, "a too-long row keeps only the start of its line")
        let keyReason = invalid.first { Int($0[0]) == keyLine }?[1] ?? ""
        #expect(keyReason.contains("license key longer than the limit of 256 bytes"))
    }

    /// Record lengths around the limit against every chunk size around it: the limit is the
    /// same wherever the chunk edges fall (the band above it used to depend on them).
    @Test func theLimitHoldsWhereverTheChunkEdgesFall() throws {
        let limit = 64
        var text = "k,n\n"
        for length in (limit - 3)...(limit + 4) {
            text += String(repeating: "a", count: length - 2) + ",b\n"
            text += "\"" + String(repeating: "q", count: length - 5) + "\",b\r\n"
            text +=
                "\"" + String(repeating: "r", count: length / 2) + "\n" + String(repeating: "r", count: length / 2)
                + "\",c\n"
            // Malformed (text after the closing quote) near the limit, on one line and across two.
            text += "\"" + String(repeating: "m", count: length - 3) + "\"x,b\n"
            text +=
                "\"" + String(repeating: "m", count: length / 2) + "\n" + String(repeating: "m", count: length / 2)
                + "\"x,b\n"
        }
        text += "last,row"
        let bytes = Array(text.utf8)
        let reference = try ReaderHarness.parse(bytes, chunkSize: bytes.count + 16, maxRecordBytes: limit).records
        #expect(reference.contains { $0.malformation?.contains("limit of \(limit) bytes") == true })
        #expect(reference.allSatisfy { $0.malformation != nil || $0.raw.utf8.count <= limit })
        #expect(reference.last?.fields == ["last", "row"])
        for chunk in 16...(limit + 20) {
            let chunked = try ReaderHarness.parse(bytes, chunkSize: chunk, maxRecordBytes: limit).records
            #expect(chunked == reference, "chunk size \(chunk)")
        }
    }

    // MARK: 2. Files still in transfer

    @Test func aFileStillBeingWrittenIsLeftForTheNextRun() throws {
        let dir = try TemporaryDirectory()
        let exports = dir.path + "/exports"
        try FileManager.default.createDirectory(atPath: exports, withIntermediateDirectories: true)
        let db = dir.path + "/k.sqlite"
        // Settled, and written without a final newline: a complete export, imported whole.
        try write(exports + "/a-done.csv", Array("license_key,owner_name,email\nA1,Ann,ann@example.com".utf8))
        // Its upload stalled mid-row, just now.
        let partial = exports + "/b-uploading.csv"
        try write(partial, Array("license_key,owner_name,email\nB1,Rick,rick@example.co".utf8), ageSeconds: nil)

        let first = try CLI.run([
            "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, exports,
        ])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("b-uploading.csv: not imported yet"), "\(first.stdout)")
        #expect(first.stdout.contains("--settle 60"))
        #expect(try query(db, "SELECT license_key, email FROM work", columns: 2) == [["A1", "ann@example.com"]])

        // The upload completes; once it has been still for --settle seconds it is imported.
        try write(partial, Array("license_key,owner_name,email\nB1,Rick,rick@example.com\n".utf8), ageSeconds: 61)
        let second = try CLI.run([
            "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, exports,
        ])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try query(db, "SELECT email FROM work WHERE license_key = 'B1'") == [["rick@example.com"]])
        #expect(try count(db, "SELECT count(*) FROM invalid_rows") == 0)

        // A file named on the command line is taken as ready, however fresh; --settle 0 too.
        try write(exports + "/c-fresh.csv", Array("license_key\nC1\n".utf8), ageSeconds: nil)
        let named = try CLI.run([
            "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, exports + "/c-fresh.csv",
        ])
        #expect(named.status == 0 && named.stdout.contains("1 queued"), "\(named.stdout)")
        try write(exports + "/d-fresh.csv", Array("license_key\nD1\n".utf8), ageSeconds: nil)
        let noSettle = try CLI.run([
            "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, "--settle", "0", exports,
        ])
        #expect(noSettle.status == 0)
        #expect(try count(db, "SELECT count(*) FROM work WHERE license_key = 'D1'") == 1)
    }

    @Test func temporaryNamesAreSkippedAndSaid() throws {
        let dir = try TemporaryDirectory()
        let db = dir.path + "/k.sqlite"
        let names = [
            ".tonight.csv.Xy12ab", "tonight.csv.part", "tonight.csv.tmp", "tonight.csv.filepart",
            "tonight.csv.crdownload", "upload.TMP",
        ]
        for (index, name) in names.enumerated() {
            try write(dir.path + "/" + name, Array("license_key\nT\(index)\n".utf8))
        }
        let result = try CLI.run([
            "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, dir.path,
        ])
        #expect(result.status == 0, "\(result.stderr)")
        for name in names {
            #expect(result.stdout.contains("\(name): skipped"), "\(name) not said: \(result.stdout)")
        }
        #expect(try count(db, "SELECT count(*) FROM work") == 0)
    }

    @Test func aReadyMarkerSaysAFileIsComplete() throws {
        let dir = try TemporaryDirectory()
        let db = dir.path + "/k.sqlite"
        try write(dir.path + "/marked.csv", Array("license_key\nM1\n".utf8), ageSeconds: nil)
        try write(dir.path + "/marked.csv.done", [], ageSeconds: nil)
        try write(dir.path + "/unmarked.csv", Array("license_key\nU1\n".utf8))
        let result = try CLI.run([
            "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, "--ready-marker",
            ".done", dir.path,
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("unmarked.csv.done is not there"), "\(result.stdout)")
        #expect(try query(db, "SELECT license_key FROM work") == [["M1"]])
        #expect(
            try CLI.run([
                "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, "--ready-marker", "",
                dir.path,
            ]).status == 64)
    }

    @Test func syncWaitsForAFileToSettleWithinMaxWait() throws {
        let bench = try RunnerBench(inventory: 1)
        let exports = bench.dir.path + "/exports"
        try FileManager.default.createDirectory(atPath: exports, withIntermediateDirectories: true)
        let late = exports + "/late.csv"
        try write(late, Array("license_key,owner_name,email\nLATE1,Lu,lu@example.com\n".utf8), ageSeconds: nil)
        func sync(_ extra: [String]) throws -> CLI.Result {
            let arguments = bench.runArguments(extra + [exports])
            return try CLI.run(
                ["sync"] + arguments.dropFirst(), environment: ["KEYASSIGN_API_KEY": bench.server.apiKey])
        }
        // Modified "in the future" (a clock a little ahead), so that it is still unsettled
        // however slowly a loaded machine starts the process.
        // No time to wait: left for the next run, and said.
        try age(late, -30)
        let hurried = try sync(["--settle", "1", "--max-wait", "0"])
        #expect(hurried.stdout.contains("late.csv: not imported yet"), "\(hurried.stdout) \(hurried.stderr)")
        #expect(try bench.count("SELECT count(*) FROM work WHERE license_key = 'LATE1'") == 0)
        // Time enough: sync waits for it (6 s here), imports it and sends it.
        try age(late, -5)
        let patient = try sync(["--settle", "1", "--max-wait", "60"])
        #expect(patient.stdout.contains("waiting up to"), "\(patient.stdout) \(patient.stderr)")
        #expect(try bench.count("SELECT count(*) FROM work WHERE license_key = 'LATE1' AND state = 'rejected'") == 1)
    }

    // MARK: 3. Only regular files

    @Test func aFIFONamedCSVNeverBlocks() throws {
        let dir = try TemporaryDirectory()
        let exports = dir.path + "/exports"
        try FileManager.default.createDirectory(atPath: exports, withIntermediateDirectories: true)
        let fifo = exports + "/a-pipe.csv"
        try #require(mkfifo(fifo, 0o600) == 0)
        try FileManager.default.createDirectory(atPath: exports + "/b-dir.csv", withIntermediateDirectories: true)
        try write(exports + "/c-good.csv", Array("license_key\nG1\n".utf8))
        let db = dir.path + "/k.sqlite"

        let scanned = try CLI.run(
            ["import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, exports], timeout: 30)
        #expect(scanned.status == 0, "\(scanned.status) \(scanned.stderr)")
        #expect(scanned.stderr.contains("a-pipe.csv: skipped: not a regular file (a FIFO)"), "\(scanned.stderr)")
        #expect(scanned.stderr.contains("b-dir.csv: skipped: not a regular file (a directory)"))
        #expect(try count(db, "SELECT count(*) FROM work WHERE license_key = 'G1'") == 1)

        let named = try CLI.run(
            ["import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, fifo], timeout: 30)
        #expect(named.status == 65, "\(named.status) \(named.stderr)")
        #expect(named.stderr.contains("not a regular file (a FIFO)"))

        let bench = try RunnerBench(inventory: 0)
        let synced = try CLI.run(
            ["sync", "--allow-missing", "owner_name", "--allow-missing", "email"]
                + bench.runArguments([exports]).dropFirst(),
            environment: ["KEYASSIGN_API_KEY": bench.server.apiKey], timeout: 60)
        #expect(synced.status == 0 || synced.status == 1, "\(synced.status) \(synced.stderr)")
        #expect(synced.stderr.contains("not a regular file (a FIFO)"))
    }

    // MARK: 6. Encodings

    private static let names = ["Jürgen Müller", "Ana Peña", "Zoë “Zo” Ångström €"]

    private func export(_ encoding: String.Encoding, bom: [UInt8] = []) throws -> [UInt8] {
        var text = "license_key;owner_name;email\r\n"
        for (index, name) in Self.names.enumerated() { text += "E\(index);\(name);e\(index)@example.com\r\n" }
        let data = try #require(text.data(using: encoding, allowLossyConversion: false))
        return bom + Array(data)
    }

    @Test func windows1252WithoutEncodingIsRefusedWithTheFlagToUse() throws {
        let dir = try TemporaryDirectory()
        let db = dir.path + "/k.sqlite"
        let path = dir.path + "/excel.csv"
        try write(path, try export(.windowsCP1252))
        let refused = try CLI.run([
            "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, path,
        ])
        #expect(refused.status == 65, "\(refused.status) \(refused.stdout) \(refused.stderr)")
        #expect(refused.stderr.contains("not valid UTF-8"))
        #expect(
            refused.stderr.contains("Windows-1252") && refused.stderr.contains("--encoding windows-1252"),
            "\(refused.stderr)")
        #expect(try count(db, "SELECT count(*) FROM work") == 0)
        #expect(try count(db, "SELECT count(*) FROM invalid_rows") == 0)
        #expect(try count(db, "SELECT count(*) FROM imports") == 0)

        let imported = try CLI.run([
            "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, "--encoding",
            "windows-1252", path,
        ])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(try query(db, "SELECT owner_name FROM work ORDER BY license_key").map { $0[0] } == Self.names)
    }

    @Test func everySupportedEncodingImportsAsUTF8() throws {
        let dir = try TemporaryDirectory()
        let latin = Self.names.filter { $0.unicodeScalars.allSatisfy { $0.value <= 0xFF } }
        // (file bytes, --encoding or nil for the BOM alone, the names expected)
        let cases: [(String, [UInt8], String?, [String])] = [
            ("utf8-bom", try export(.utf8, bom: [0xEF, 0xBB, 0xBF]), nil, Self.names),
            ("utf16le-bom", try export(.utf16LittleEndian, bom: [0xFF, 0xFE]), nil, Self.names),
            ("utf16be-bom", try export(.utf16BigEndian, bom: [0xFE, 0xFF]), nil, Self.names),
            ("utf32le-bom", try export(.utf32LittleEndian, bom: [0xFF, 0xFE, 0, 0]), nil, Self.names),
            ("utf32be-bom", try export(.utf32BigEndian, bom: [0, 0, 0xFE, 0xFF]), nil, Self.names),
            ("utf16le", try export(.utf16LittleEndian), "utf-16le", Self.names),
            ("utf16be", try export(.utf16BigEndian), "utf-16be", Self.names),
            ("cp1252", try export(.windowsCP1252), "windows-1252", Self.names),
            ("utf8", try export(.utf8), "utf-8", Self.names),
            (
                "latin1",
                Array(
                    ("license_key;owner_name;email\n"
                        + latin.enumerated().map { "E\($0);\($1);e\($0)@example.com\n" }.joined())
                        .data(using: .isoLatin1)!), "iso-8859-1", latin
            ),
        ]
        for (name, bytes, encoding, expected) in cases {
            let db = dir.path + "/\(name).sqlite"
            let path = dir.path + "/\(name).csv"
            try write(path, bytes)
            let result = try CLI.run(
                ["import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, path]
                    + (encoding.map { ["--encoding", $0] } ?? []))
            #expect(result.status == 0, "\(name): \(result.stderr)")
            let rows = try query(db, "SELECT license_key, owner_name, email FROM work ORDER BY license_key", columns: 3)
            #expect(rows.map { $0[1] } == expected, "\(name): \(rows)")
            #expect(rows.first?[0] == "E0" && rows.first?[2] == "e0@example.com", "\(name): \(rows)")
            // Stored as UTF-8: SQLite's own length in bytes is the UTF-8 length.
            let bytesStored = try count(db, "SELECT sum(length(CAST(owner_name AS BLOB))) FROM work")
            #expect(bytesStored == expected.reduce(0) { $0 + $1.utf8.count }, "\(name)")
        }
    }

    @Test func utf16WithoutABOMIsRefusedWithTheFlagToUse() throws {
        let dir = try TemporaryDirectory()
        let db = dir.path + "/k.sqlite"
        for (encoding, flag) in [(String.Encoding.utf16LittleEndian, "utf-16le"), (.utf16BigEndian, "utf-16be")] {
            let path = dir.path + "/\(flag).csv"
            try write(path, try export(encoding))
            let refused = try CLI.run([
                "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, path,
            ])
            #expect(refused.status == 65, "\(flag): \(refused.status) \(refused.stdout)")
            #expect(refused.stderr.contains("--encoding \(flag)"), "\(flag): \(refused.stderr)")
        }
        #expect(try count(db, "SELECT count(*) FROM work") + count(db, "SELECT count(*) FROM invalid_rows") == 0)
    }

    @Test func anUnpairedSurrogateIsAnInvalidRowNotAGuess() throws {
        let dir = try TemporaryDirectory()
        let db = dir.path + "/k.sqlite"
        var bytes: [UInt8] =
            [0xFF, 0xFE] + Array("license_key,owner_name\nU1,Ok\nU2,".data(using: .utf16LittleEndian)!)
        bytes += [0x00, 0xD8]  // a high surrogate with no low one after it
        bytes += Array("x\nU3,Fine".data(using: .utf16LittleEndian)!) + [0x41]  // and a last byte cut short
        let path = dir.path + "/s.csv"
        try write(path, bytes)
        let result = try CLI.run([
            "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, path,
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try query(db, "SELECT license_key FROM work") == [["U1"]])
        let reasons = try query(db, "SELECT source_line, reason FROM invalid_rows ORDER BY source_line", columns: 2)
        #expect(reasons.map { $0[0] } == ["3", "4"])
        #expect(reasons.allSatisfy { $0[1].contains("not valid UTF-16LE") }, "\(reasons)")
        // Stored as UTF-8 all the same.
        #expect(try count(db, "SELECT count(*) FROM invalid_rows WHERE raw IS NULL") == 0)
    }

    @Test func theHelpSaysWhatChanged() throws {
        let help = try CLI.run(["import", "--help"])
        for word in [
            "--settle", "--ready-marker", "--encoding", "utf-16le", "windows-1252", "*.part", "1 MiB", "256 bytes",
        ] {
            #expect(help.stdout.contains(word), "import --help lacks \(word)")
        }
        let sync = try CLI.run(["sync", "--help"])
        #expect(sync.stdout.contains("--encoding") && sync.stdout.contains("--settle"))
    }
}
