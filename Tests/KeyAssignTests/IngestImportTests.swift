import Foundation
import Testing

@testable import KeyAssign

@Suite struct IngestImportTests {
    @Test func storesTrimmedValuesWithSourceAndAFreshToken() throws {
        let f = try ImportFixture()
        let path = try f.write(
            "shop.csv",
            "\u{FEFF}Order,License Key,Name,Email\r\n"
                + "1,  K-1  , \"Dubois, Amélie\" ,amelie@example.fr\r\n"
                + "2,K-2,,\r\n")
        let outcome = f.run([path], allowMissing: ImportFixture.namesOptional)
        #expect(outcome.exitStatus == .ok)
        #expect(outcome.queued == 2)
        #expect(
            try f.work() == [
                .init(
                    key: "K-1", owner: "Dubois, Amélie", email: "amelie@example.fr", state: "pending", file: path,
                    line: 2),
                .init(key: "K-2", owner: nil, email: nil, state: "pending", file: path, line: 3),
            ])
        let tokens = try f.db.prepare("SELECT idempotency_token, created_at, attempts FROM work")
        var seen = Set<String>()
        while try tokens.step() {
            let token = tokens.string(0)!
            #expect(
                token.range(
                    of: "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
                    options: .regularExpression) != nil)
            #expect(tokens.string(1)!.hasSuffix("Z"))
            #expect(tokens.int(2) == 0)
            seen.insert(token)
        }
        #expect(seen.count == 2)
        let imports = try f.db.prepare("SELECT path, size, sha256, rows_read, rows_queued FROM imports")
        #expect(try imports.step())
        #expect(imports.string(0) == path)
        #expect(imports.int(1) == Int64(try Data(contentsOf: URL(fileURLWithPath: path)).count))
        #expect(imports.string(2) == (try FileDigest.sha256(path: path).hex))
        #expect(imports.int(3) == 2 && imports.int(4) == 2)
    }

    @Test func firstAndLastNameAreJoinedAndAliasesMap() throws {
        let f = try ImportFixture()
        let path = try f.write(
            "crm.csv",
            "Contact ID;First Name;Last Name;E-Mail;Serial Number;Notes\n"
                + "c1;José;Núñez;jose@example.mx;S-1;\"line one\nline two\"\n"
                + "c2;;Tanaka;yuki@example.jp;S-2;\n")
        #expect(f.run([path], allowMissing: ImportFixture.namesOptional).exitStatus == .ok)
        let rows = try f.work()
        #expect(rows.map(\.owner) == ["José Núñez", "Tanaka"])
        #expect(rows.map(\.email) == ["jose@example.mx", "yuki@example.jp"])
        #expect(rows.map(\.line) == [2, 4])
    }

    @Test func mapOverridesAndAmbiguityIsRefused() throws {
        let f = try ImportFixture()
        let path = try f.write("x.csv", "Code,Buyer,Buyer E-mail,Email\nK1,Ann,ann@x.de,other@x.de\n")
        let outcome = f.run(
            [path], allowMissing: ImportFixture.namesOptional,
            map: [.licenseKey: "Code", .ownerName: "Buyer", .email: "Buyer E-mail"])
        #expect(outcome.exitStatus == .ok)
        #expect(try f.work().map(\.email) == ["ann@x.de"])

        let ambiguous = try f.write("y.csv", "key,Email,Customer Email\nK2,a@x.de,b@x.de\n")
        let refused = f.run([ambiguous], allowMissing: ImportFixture.namesOptional)
        #expect(refused.exitStatus == .dataError)
        guard case .failed(let message) = refused.files.first?.status else {
            Issue.record("not refused")
            return
        }
        #expect(message.contains("\"Email\" and \"Customer Email\""))
        #expect(try f.count("work") == 1)
    }

    @Test func fileWithoutKeyColumnIsRefusedListingHeadersAndOthersStillImport() throws {
        let f = try ImportFixture()
        let bad = try f.write("a.csv", "Name,Email\nAnn,ann@x.de\n")
        let good = try f.write("b.csv", "serial,name\nK1,Bo\n")
        let outcome = f.run([bad, f.dir.path + "/missing.csv", good], allowMissing: ImportFixture.namesOptional)
        #expect(outcome.exitStatus == .dataError)
        guard case .failed(let message) = outcome.files.first(where: { $0.path == bad })?.status else {
            Issue.record("not refused")
            return
        }
        #expect(message.contains(bad) && message.contains("\"Name\", \"Email\""))
        #expect(outcome.files.contains { $0.path.hasSuffix("missing.csv") && $0.status != .imported })
        #expect(try f.work().map(\.key) == ["K1"])
        #expect(try f.count("imports") == 1)
    }

    @Test func invalidRowsAreRecordedWithReasonAndLine() throws {
        let f = try ImportFixture()
        let longName = String(repeating: "é", count: 256)
        let okName = String(repeating: "é", count: 255)
        var bytes = Array(
            ("key,name,email\n"
                + "K1,Ann,ann@example.com\n"  // 2 ok
                + ",Empty Key,e@example.com\n"  // 3 empty key
                + "K3,Bell\u{07},b@example.com\n"  // 4 control character
                + "K4,Two,two@@example.com\n"  // 5 two @
                + "K5,Local,@example.com\n"  // 6 empty local part
                + "K6,Dotless,x@localhost\n"  // 7 no dot
                + "K7,Space,a b@example.com\n"  // 8 space
                + "K8,\(longName),l@example.com\n"  // 9 too long
                + "K9,\(okName),ok@example.com\n"  // 10 ok
                + "K10,too,many,fields\n"  // 11 field count
                + "K11,\"oops,x@example.com\n"  // 12 unbalanced quote
                ).utf8)
        bytes += Array("K12,Lat".utf8) + [0xE9] + Array("n,l@example.com\n".utf8)  // 13 Latin-1 byte
        bytes += Array(("K13,Long Email," + String(repeating: "a", count: 250) + "@example.com\n").utf8)  // 14
        let path = try f.write("v.csv", bytes: bytes)
        // --encoding utf-8: a stray Latin-1 byte makes its row invalid (without it, the file
        // would be refused whole as not UTF-8: IngestHardeningTests).
        let outcome = f.run([path], allowMissing: ImportFixture.namesOptional, encoding: .utf8)
        #expect(outcome.exitStatus == .ok)
        #expect(try f.work().map(\.key) == ["K1", "K9"])
        let invalid = try f.invalid()
        try #require(invalid.map(\.line) == [3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14])
        let reasons = invalid.map(\.reason)
        #expect(reasons[0].contains("empty license key"))
        #expect(reasons[1].contains("control character U+0007") && reasons[1].contains("\"name\""))
        #expect(reasons[2].contains("more than one @"))
        #expect(reasons[3].contains("empty local part"))
        #expect(reasons[4].contains("no dot"))
        #expect(reasons[5].contains("space"))
        #expect(reasons[6].contains("255 characters"))
        #expect(reasons[7].contains("4 fields where the header has 3"))
        #expect(reasons[8].contains("unbalanced quote"))
        #expect(reasons[9].contains("invalid UTF-8"))
        #expect(reasons[10].contains("254 bytes"))
        #expect(invalid[3].raw == "K5,Local,@example.com")
        #expect(invalid[3].key == "K5")
        try #require(outcome.files.count == 1 && outcome.files[0].problems.count == FileImporter.problemsShown)
        #expect(outcome.files[0].problems[0] == "\(path):3: empty license key (column \"key\")")
        #expect(outcome.invalid == 11 && outcome.rowsRead == 13)
    }

    @Test func duplicatesAddNoWorkAndConflictsKeepTheFirstRow() throws {
        let f = try ImportFixture()
        let a = try f.write("a.csv", "key,name,email\nK1,Ann,ann@x.de\nK2,Bo,bo@x.de\nK1,Ann,ann@x.de\n")
        let b = try f.write("b.csv", "key,name,email\nK2,Bo,bo@x.de\nK1,Ann,other@x.de\nK3,Cy,cy@x.de\n")
        let first = f.run([a], allowMissing: ImportFixture.namesOptional)
        #expect((first.queued, first.duplicates, first.conflicts) == (2, 1, 0))
        let second = f.run([b], allowMissing: ImportFixture.namesOptional)
        #expect((second.queued, second.duplicates, second.conflicts, second.invalid) == (1, 1, 1, 0))
        #expect(
            try f.work() == [
                .init(key: "K1", owner: "Ann", email: "ann@x.de", state: "pending", file: a, line: 2),
                .init(key: "K2", owner: "Bo", email: "bo@x.de", state: "pending", file: a, line: 3),
                .init(key: "K3", owner: "Cy", email: "cy@x.de", state: "pending", file: b, line: 4),
            ])
        let invalid = try f.invalid()
        try #require(invalid.count == 1)
        #expect(invalid[0].reason == "conflict: \(b):3 has a different email than \(a):2, which is kept")
        #expect(invalid[0].key == "K1")
    }

    @Test func duplicatesAndConflictsAcrossInsertBatchesAreClassifiedInLineOrder() throws {
        let f = try ImportFixture()
        var text = "key,email\n"
        for row in 0..<200 {
            switch row {
            case 70: text += "K5,k5@x.de\n"  // duplicate of row 5, next batch
            case 130: text += "K64,other@x.de\n"  // conflict with row 64 (batch edge)
            case 131: text += ",empty@x.de\n"  // invalid, between batches' rows
            case 65: text += "K65,k65@x.de\n"
            default: text += "K\(row),k\(row)@x.de\n"
            }
        }
        text += "K199,k199@x.de\n"  // duplicate within the last batch
        let path = try f.write("batches.csv", text)
        let outcome = f.run([path], allowMissing: ImportFixture.namesOptional)
        #expect((outcome.queued, outcome.duplicates, outcome.conflicts, outcome.invalid) == (197, 2, 1, 1))
        #expect(
            outcome.files[0].problems == [
                "\(path):132: conflict: \(path):132 has a different email than \(path):66, which is kept",
                "\(path):133: empty license key (column \"key\")",
            ])
        let rows = try f.work()
        #expect(rows.count == 197)
        #expect(rows.map(\.line) == rows.map(\.line).sorted())
        #expect(rows.first { $0.key == "K64" }?.email == "k64@x.de")
    }

    @Test func aKeyInAFinalStateStaysAsItIs() throws {
        let f = try ImportFixture()
        let a = try f.write("a.csv", "key,name\nK1,Ann\n")
        _ = f.run([a], allowMissing: ImportFixture.namesOptional)
        try f.db.execute("UPDATE work SET state = 'assigned', attempts = 1")
        let b = try f.write("b.csv", "key,name\r\nK1,Ann\r\n")  // not byte-identical to a.csv
        let c = try f.write("c.csv", "key,name\nK1,Someone Else\n")
        let outcome = f.run([b, c], allowMissing: ImportFixture.namesOptional)
        #expect((outcome.duplicates, outcome.conflicts, outcome.queued) == (1, 1, 0))
        #expect(try f.work().map(\.state) == ["assigned"])
        #expect(try f.work().map(\.owner) == ["Ann"])
    }

    @Test func reimportingTheSameFileIsSkipped() throws {
        let f = try ImportFixture()
        let a = try f.write("a.csv", "key\nK1\nK2\n")
        #expect(f.run([a], allowMissing: ImportFixture.namesOptional).queued == 2)
        let tokens = try f.db.prepare("SELECT idempotency_token FROM work ORDER BY id")
        var before: [String] = []
        while try tokens.step() { before.append(tokens.string(0)!) }
        let copy = try f.write("copy-of-a.csv", "key\nK1\nK2\n")
        let again = f.run([a, copy], allowMissing: ImportFixture.namesOptional)
        #expect(again.exitStatus == .ok)
        #expect(
            again.files.allSatisfy {
                if case .alreadyImported(let previous, _) = $0.status { previous == a } else { false }
            })
        #expect(f.output.contains { $0.contains("skipped, already imported") })
        #expect(try f.count("imports") == 1)
        tokens.reset()
        var after: [String] = []
        while try tokens.step() { after.append(tokens.string(0)!) }
        #expect(after == before)
    }

    @Test func dryRunReportsTheSameAndWritesNothing() throws {
        let f = try ImportFixture()
        let a = try f.write("a.csv", "key,email\nK1,a@x.de\nK1,b@x.de\n,x@x.de\n")
        let dry = f.run([a], allowMissing: ImportFixture.namesOptional, dryRun: true)
        #expect((dry.queued, dry.conflicts, dry.invalid) == (1, 1, 1))
        #expect(try f.count("work") == 0 && f.count("imports") == 0 && f.count("invalid_rows") == 0)
        let real = f.run([a], allowMissing: ImportFixture.namesOptional)
        #expect((real.queued, real.conflicts, real.invalid) == (1, 1, 1))

        // Against a database that does not exist, a dry run does not create it.
        let missing = f.dir.path + "/none.sqlite"
        let outcome = ImportJob.run(
            [a], options: ImportFixture.namesOptional(ImportOptions(databasePath: missing, dryRun: true)),
            output: { _ in })
        #expect(outcome.queued == 1)
        #expect(!FileManager.default.fileExists(atPath: missing))
    }

    @Test func aDirectoryMeansItsCSVFilesInNameOrder() throws {
        let f = try ImportFixture()
        let sub = f.dir.path + "/drop"
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
        try Data("key\nB1\n".utf8).write(to: URL(fileURLWithPath: sub + "/b.csv"))
        try Data("key\nA1\n".utf8).write(to: URL(fileURLWithPath: sub + "/a.CSV"))
        try Data("not csv".utf8).write(to: URL(fileURLWithPath: sub + "/notes.txt"))
        let outcome = f.run([sub], allowMissing: ImportFixture.namesOptional)
        #expect(outcome.files.map(\.path) == [sub + "/a.CSV", sub + "/b.csv"])
        #expect(try f.work().map(\.key) == ["A1", "B1"])
    }
}
