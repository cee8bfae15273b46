import Foundation
import Testing

@testable import KeyAssign

@Suite struct IngestCLITests {
    @Test func importsTheSamplesThenStatusAndInvalidReport() throws {
        let dir = try TemporaryDirectory()
        let db = dir.path + "/k.sqlite"
        let first = try CLI.run([
            "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, CLI.samples,
        ])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("total: 3 files, 33 rows: 28 queued, 1 duplicate, 1 conflict, 3 invalid"))
        #expect(first.stdout.contains("shop-export.csv:6: empty license key"))

        let again = try CLI.run([
            "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, CLI.samples,
        ])
        #expect(again.status == 0)
        // One line for the files already imported, none per file: none was read again.
        #expect(again.stdout.components(separatedBy: "skipped, already imported").count == 2, "\(again.stdout)")
        #expect(
            again.stdout.contains(
                "3 files skipped, already imported (3 unchanged in path, size, modification time and inode: not read"),
            "\(again.stdout)")
        #expect(again.stdout.contains("total: 0 files, 0 rows"), "\(again.stdout)")

        // $KEYASSIGN_DB is the default database.
        let status = try CLI.run(["status"], environment: ["KEYASSIGN_DB": db])
        #expect(status.status == 0)
        let lines = status.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let counts = Dictionary(
            lines.map { ($0.dropLast().joined(separator: " "), $0.last ?? "") }, uniquingKeysWith: { a, _ in a })
        #expect(WorkState.allCases.allSatisfy { counts[$0.rawValue] != nil })
        #expect(
            counts["pending"] == "28" && counts["assigned"] == "0" && counts["invalid rows"] == "4"
                && counts["imports"] == "3")

        let report = try CLI.run(["report", "--invalid", "--db", db])
        #expect(report.status == 0)
        #expect(report.stdout.hasPrefix("\u{FEFF}source_file,source_line,reason,license_key,owner_name,email,raw\r\n"))
        // Read it back with keyassign's own reader: 4 rows of 7 fields, the values intact.
        let records = try ReaderHarness.parse(Array(report.stdout.utf8), delimiter: .comma).records
        #expect(records.count == 5)
        #expect(records.allSatisfy { $0.fields.count == 7 && $0.malformation == nil })
        let conflict = records.first { $0.fields[2].hasPrefix("conflict:") }
        #expect(conflict?.fields[1] == "3")
        #expect(conflict?.fields[2].contains("eu-export.csv:5") == true)
        let control = records.first { $0.fields[2].contains("control character") }
        #expect(control?.fields[6].contains("Zahra\u{07}") == true)
    }

    @Test func exitStatuses() throws {
        let dir = try TemporaryDirectory()
        let db = dir.path + "/k.sqlite"
        let good = dir.path + "/good.csv"
        try Data("Serial,Name\nK1,Ann\n".utf8).write(to: URL(fileURLWithPath: good))
        let nokey = dir.path + "/nokey.csv"
        try Data("Name,E-Mail\nAnn,a@x.de\n".utf8).write(to: URL(fileURLWithPath: nokey))

        let mixed = try CLI.run([
            "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, nokey,
            dir.path + "/absent.csv", good,
        ])
        #expect(mixed.status == 65)
        #expect(mixed.stderr.contains("nokey.csv: no license-key column"))
        #expect(mixed.stderr.contains("\"Name\", \"E-Mail\""))
        #expect(mixed.stderr.contains("absent.csv"))
        #expect(mixed.stdout.contains("1 queued"))

        #expect(
            try CLI.run([
                "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, "--map",
                "colour=Name", good,
            ]).status == 64)
        #expect(
            try CLI.run([
                "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, "--map",
                "license_key", good,
            ]).status == 64)
        #expect(
            try CLI.run([
                "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, "--delimiter", "x",
                good,
            ]).status == 64)
        #expect(
            try CLI.run(["import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db]).status
                == 64)
        #expect(try CLI.run(["report", "--db", db, "--format", "xml"]).status == 64)

        let mapped = dir.path + "/mapped.csv"
        try Data("Code;Buyer\nK9;Bo\n".utf8).write(to: URL(fileURLWithPath: mapped))
        let withMap = try CLI.run([
            "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, "--delimiter", ";",
            "--map", "license_key=Code", "--map", "owner_name=Buyer", mapped,
        ])
        #expect(withMap.status == 0, "\(withMap.stderr)")
        let database = try Database(path: db, create: false)
        #expect(try database.scalarInt("SELECT count(*) FROM work WHERE license_key = 'K9'") == 1)

        // Reading commands do not create a database.
        let status = try CLI.run(["status", "--db", dir.path + "/nothing.sqlite"])
        #expect(status.status != 0)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/nothing.sqlite"))
    }

    /// `--help` lists the delimiters, and every spelling accepted before they were an enum still is.
    @Test func delimiterChoicesAreListedAndEverySpellingWorks() throws {
        let help = try CLI.run(["import", "--help"])
        #expect(help.status == 0)
        let choices = [
            ("auto", "detected from each file's header line"), ("comma", "',' (also given as ,)"),
            ("semicolon", "';' (also given as ;)"), ("tab", "tab (also \\t)"), ("pipe", "'|' (also given as |)"),
        ]
        let lines = help.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        for (value, meaning) in choices {
            #expect(
                lines.contains { $0.hasPrefix(value + " ") && $0.hasSuffix("- " + meaning) },
                "help lacks \(value): \(help.stdout)")
        }
        let dir = try TemporaryDirectory()
        let spellings: [(String, String)] = [
            ("auto", ","), (",", ","), ("comma", ","), (";", ";"), ("semicolon", ";"), ("tab", "\t"), ("\t", "\t"),
            ("\\t", "\t"), ("|", "|"), ("pipe", "|"),
        ]
        for (index, (spelling, separator)) in spellings.enumerated() {
            let file = dir.path + "/d\(index).csv"
            try Data("license_key\(separator)owner_name\nK\(index)\(separator)Ann\n".utf8).write(
                to: URL(fileURLWithPath: file))
            let result = try CLI.run([
                "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", dir.path + "/k.sqlite",
                "--delimiter", spelling, file,
            ])
            #expect(result.status == 0, "--delimiter \(spelling): \(result.stderr)")
        }
        let database = try Database(path: dir.path + "/k.sqlite", create: false)
        // Read with the right delimiter, every file gives its owner name a column of its own.
        #expect(try database.scalarInt("SELECT count(*) FROM work WHERE owner_name = 'Ann'") == Int64(spellings.count))
    }

    /// A big import killed mid-file leaves nothing of that file: SQLite never sees a COMMIT.
    /// SIGKILL is the hardest case (no code of ours runs) and the one a test can send
    /// reliably: a child spawned from the test runner's threads inherits SIGINT and SIGTERM
    /// blocked or ignored. Their default action is the same death before COMMIT.
    @Test func anInterruptedImportLeavesNothingBehind() throws {
        let signal = SIGKILL
        let dir = try TemporaryDirectory()
        let db = dir.path + "/k.sqlite"
        // A small file first, committed: it must survive the interrupted one.
        let small = dir.path + "/small.csv"
        try Data("key\nKEEP-1\n".utf8).write(to: URL(fileURLWithPath: small))
        #expect(
            try CLI.run(["import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, small])
                .status == 0)

        let big = dir.path + "/big.csv"
        #expect(FileManager.default.createFile(atPath: big, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: big))
        handle.write(Data("license_key,owner_name,email\n".utf8))
        var chunk = ""
        for row in 0..<400_000 {
            chunk += "key-\(row)-\(row &* 2_654_435_761 % 1_000_003),\"Last, First \(row)\",user\(row)@example.com\n"
            if row % 20_000 == 19_999 {
                handle.write(Data(chunk.utf8))
                chunk = ""
            }
        }
        handle.write(Data(chunk.utf8))
        try handle.close()

        let process = try CLI.start(["import", "--db", db, big])
        // Mid-import: the transaction has spilled pages into the WAL, and nothing is committed.
        let wal = db + "-wal"
        let deadline = Date().addingTimeInterval(60)
        func walSize() -> Int { ((try? FileManager.default.attributesOfItem(atPath: wal))?[.size] as? Int) ?? 0 }
        let startSize = walSize()
        while process.isRunning && walSize() < startSize + 4_000_000 && Date() < deadline { usleep(2_000) }
        #expect(process.isRunning, "the import finished before it could be interrupted")
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal)

        let database = try Database(path: db, create: false)
        #expect(try database.scalarInt("SELECT count(*) FROM work") == 1)
        #expect(try database.scalarInt("SELECT count(*) FROM work WHERE license_key = 'KEEP-1'") == 1)
        #expect(try database.scalarInt("SELECT count(*) FROM imports") == 1)
        #expect(try database.scalarInt("SELECT count(*) FROM invalid_rows") == 0)
        let check = try database.prepare("PRAGMA integrity_check")
        #expect(try check.step())
        #expect(check.string(0) == "ok")
        check.reset()  // an unfinished statement would pin this connection's snapshot

        // And the same file imports cleanly afterwards.
        let rerun = try CLI.run([
            "import", "--allow-missing", "owner_name", "--allow-missing", "email", "--db", db, big,
        ])
        #expect(rerun.status == 0)
        #expect(try database.scalarInt("SELECT count(*) FROM work") == 400_001)
    }
}
