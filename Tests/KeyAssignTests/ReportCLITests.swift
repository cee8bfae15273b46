import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// The results commands (`report`, `retry`, `history`, `audit`) on databases filled by the
/// real `import` and `run` against the sandbox.
@Suite struct ReportCLITests {
    /// A bench whose rows carry hostile and awkward owner names.
    static func benchWithAwkwardNames() throws -> (RunnerBench, [String]) {
        let bench = try RunnerBench(inventory: 0)
        let keys = (0..<5).map { _ in UUID().uuidString.lowercased() }
        let names = ["=HYPERLINK(\"http://x.example\",\"click\")", "+1 555 0100", "-minus", "@at", "Doe, \"JJ\" Jane"]
        var csv = "license_key,owner_name,email\n"
        for (key, name) in zip(keys, names) {
            csv += "\(key),\"\(name.replacingOccurrences(of: "\"", with: "\"\""))\",owner@example.com\n"
        }
        let path = bench.dir.path + "/awkward.csv"
        try csv.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try CLI.run(["import", "--db", bench.db, path]).status == 0)
        return (bench, names)
    }

    @Test func csvNeutralisesFormulasUnlessRawAndJSONLHasTheDocumentedFields() throws {
        let (bench, names) = try Self.benchWithAwkwardNames()
        let csv = try CLI.run(["report", "--db", bench.db])
        #expect(csv.status == 0, "\(csv.stderr)")
        let lines = csv.stdout.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        // For spreadsheets: a UTF-8 byte-order mark first (ReportSpreadsheetTests).
        #expect(
            lines.first
                == "\u{FEFF}license_key,owner_name,email,state,code,attempts,last_error,source_file,source_line,updated_at"
        )
        try #require(lines.count == 6)
        #expect(
            lines[1].contains(",\"'=HYPERLINK(\"\"http://x.example\"\",\"\"click\"\")\",owner@example.com,pending,,0,,")
        )
        #expect(lines[2].contains(",'+1 555 0100,"))
        #expect(lines[3].contains(",'-minus,"))
        #expect(lines[4].contains(",'@at,"))
        #expect(lines[5].contains(",\"Doe, \"\"JJ\"\" Jane\","))

        let raw = try CLI.run(["report", "--db", bench.db, "--raw"])
        #expect(raw.stdout.contains(",\"=HYPERLINK("))
        #expect(!raw.stdout.contains("'="))
        #expect(raw.stdout.contains(",+1 555 0100,"))

        let jsonl = try CLI.run(["report", "--db", bench.db, "--format", "jsonl"])
        let objects = try jsonl.stdout.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(objects.count == 5)
        for (object, name) in zip(objects, names) {
            #expect(Set(object.keys) == Set(ReportRow.fieldNames))
            #expect(object["owner_name"] as? String == name)  // JSON is for machines: never neutralised
            #expect(object["code"] is NSNull)
            #expect(object["state"] as? String == "pending")
            #expect(object["source_line"] as? Int != nil)
            let updated = try #require(object["updated_at"] as? String)
            #expect(updated.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil)
        }
    }

    @Test func stateFilterAndOutputFile() throws {
        let bench = try RunnerBench(inventory: 3, unknown: 2)
        #expect(try bench.run().status == 0)
        let out = bench.dir.path + "/rejected.jsonl"
        let result = try CLI.run([
            "report", "--db", bench.db, "--state", "rejected", "--format", "jsonl", "--output", out,
        ])
        #expect(result.status == 0 && result.stdout.isEmpty)
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.allSatisfy { $0.contains("\"state\":\"rejected\"") && $0.contains("\"code\":801") })
        #expect(!FileManager.default.fileExists(atPath: out + ".partial"))
        #expect(try CLI.run(["report", "--db", bench.db, "--state", "done"]).status == 64)
    }

    @Test func splitWritesSuccessAndErrorsWithPlainReasons() throws {
        let bench = try RunnerBench(inventory: 3, unknown: 2)
        let bad = bench.dir.path + "/bad.csv"
        try "license_key,owner_name,email\n,Nobody,no@example.com\nK-BAD,Bad Email,not-an-email\n"
            .write(toFile: bad, atomically: true, encoding: .utf8)
        #expect(try CLI.run(["import", "--db", bench.db, bad]).status == 0)
        // The invalid rows are never queued; the unknown keys end rejected, which is a normal end.
        #expect(try bench.run().status == 0)
        let dir = bench.dir.path + "/split"
        #expect(try CLI.run(["report", "--db", bench.db, "--split", dir]).status == 0)
        let success = try String(contentsOfFile: dir + "/success.csv", encoding: .utf8).components(separatedBy: "\r\n")
            .filter { !$0.isEmpty }
        try #require(success.count == 1 + 3)
        #expect(success[0] == SplitReport.successHeader.joined(separator: ","))
        let errors = try String(contentsOfFile: dir + "/errors.csv", encoding: .utf8).components(separatedBy: "\r\n")
            .filter { !$0.isEmpty }
        try #require(!errors.isEmpty)
        #expect(errors[0] == SplitReport.errorsHeader.joined(separator: ","))
        let rejected = errors.filter { $0.hasPrefix("rejected,") }
        let invalid = errors.filter { $0.hasPrefix("invalid,") }
        #expect(rejected.count == 2)
        // Explained from the server's key listing: not merely "refused".
        #expect(rejected.allSatisfy { $0.contains("unknown to the server") && $0.contains("sales.csv") })
        #expect(invalid.count == 2)
        #expect(invalid.contains { $0.contains("empty license key") && $0.contains("bad.csv,2,") })
        #expect(invalid.contains { $0.contains("K-BAD") && $0.contains("email") && $0.contains("bad.csv,3,") })
    }

    @Test func retryRequeuesOnlyTheSelectionAndKeepsHistoryAndToken() throws {
        var faults = SandboxConfiguration.Faults()
        faults.fail5xx = 1
        let bench = try RunnerBench(inventory: 4, unknown: 1)
        try bench.restart(faults: faults)
        // 503s may have reached the server: when the attempts run out the rows are uncertain,
        // never failed (issue 18); without the listing they stay so.
        #expect(try bench.run(["--max-attempts", "2", "--no-reconcile"]).status == 1)
        #expect(try bench.stateCounts() == ["uncertain": 5])
        let tokensBefore = try bench.count("SELECT count(DISTINCT idempotency_token) FROM work")

        // One key only.
        let one = bench.inventory[0]
        let single = try CLI.run(["retry", "--db", bench.db, "--state", "uncertain", "--key", one])
        #expect(single.status == 0 && single.stdout.contains("requeued 1 row"))
        #expect(try bench.count("SELECT count(*) FROM work WHERE state = 'pending'") == 1)
        #expect(try bench.count("SELECT attempts FROM work WHERE license_key = '\(one)'") == 0)
        #expect(
            try bench.count(
                "SELECT count(*) FROM attempts a JOIN work w ON w.id = a.work_id WHERE w.license_key = '\(one)'") == 2)
        #expect(try bench.count("SELECT maybe_delivered FROM work WHERE license_key = '\(one)'") == 1)

        // A state that matches nothing selects nothing; a non-final state is refused.
        #expect(try CLI.run(["retry", "--db", bench.db, "--state", "rejected"]).stdout.contains("requeued 0 rows"))
        #expect(try CLI.run(["retry", "--db", bench.db, "--state", "pending"]).status == 64)
        // A source that is no imported file is an error naming the nearest (ReportRetrySourceTests).
        let noSuch = try CLI.run(["retry", "--db", bench.db, "--source", "/no/such.csv"])
        #expect(noSuch.status == 64 && noSuch.stderr.contains("sales.csv"), "\(noSuch.stderr)")

        // The default selection (failed) has nothing; `--state uncertain` takes the rest, then a
        // healthy server assigns them, and the unknown key's 801 is uncertain — its 503s may
        // have reached the server.
        #expect(try CLI.run(["retry", "--db", bench.db]).stdout.contains("requeued 0 rows"))
        #expect(try CLI.run(["retry", "--db", bench.db, "--state", "uncertain"]).stdout.contains("requeued 4 rows"))
        try bench.restart()
        #expect(try bench.run(["--no-reconcile"]).status == 1)
        #expect(try bench.stateCounts() == ["assigned": 4, "uncertain": 1])
        #expect(try bench.count("SELECT count(DISTINCT idempotency_token) FROM work") == tokensBefore)
    }

    @Test func historyShowsEveryAttempt() throws {
        var faults = SandboxConfiguration.Faults()
        faults.fail5xx = 1
        let bench = try RunnerBench(inventory: 1)
        try bench.restart(faults: faults)
        _ = try bench.run(["--max-attempts", "2", "--no-reconcile"])
        try bench.restart()
        #expect(try CLI.run(["retry", "--db", bench.db, "--state", "uncertain"]).status == 0)
        #expect(try bench.run().status == 0)
        let key = bench.inventory[0]
        let history = try CLI.run(["history", "--db", bench.db, key])
        #expect(history.status == 0)
        #expect(history.stdout.contains("state        assigned"))
        let attemptLines = history.stdout.split(separator: "\n").filter { $0.first?.isNumber == true }
        try #require(attemptLines.count == 3)
        #expect(attemptLines[0].contains("\t503\t") && attemptLines[0].contains("\tretry\t"))
        #expect(attemptLines[2].contains("\t200\t800\tassigned\ttrusted"))
        let unknown = try CLI.run(["history", "--db", bench.db, "no-such-key"])
        #expect(unknown.status == 1 && unknown.stderr.contains("no-such-key"))
    }

    @Test("history of a failed row: why once, and a warning when an attempt may have reached the server")
    func historyOfAFailedRow() {
        let row = ReportRow(
            licenseKey: "K-1", ownerName: "Jane", email: "j@example.com", state: "failed", code: nil,
            attempts: 5, lastError: "gave up after 5 attempts: timed out (curl 28)",
            sourceFile: "e.csv", sourceLine: 2, updatedAt: "2026-11-27T03:00:00Z")
        let delivered = History.render(History.Entry(row: row, maybeDelivered: true, attempts: []))
        #expect(
            delivered.contains(
                "state        failed — keyassign stopped trying: gave up after 5 attempts: timed out (curl 28); run `keyassign retry`"
            ))
        #expect(delivered.components(separatedBy: "gave up").count == 2)
        #expect(delivered.contains("note         an earlier attempt may have reached the server"))
        let notDelivered = History.render(History.Entry(row: row, maybeDelivered: false, attempts: []))
        #expect(!notDelivered.contains("note "))
        var assigned = row
        assigned.state = "assigned"
        #expect(!History.render(History.Entry(row: assigned, maybeDelivered: true, attempts: [])).contains("note "))
    }

    @Test func auditCatchesAHandEditedStateAndAlteredReplyBytes() throws {
        let bench = try RunnerBench(inventory: 3, unknown: 2)
        #expect(try bench.run().status == 0)
        let audit = ["audit", "--db", bench.db, "--public-key", bench.server.publicKeyPath]
        let clean = try CLI.run(audit)
        #expect(clean.status == 0, "\(clean.stdout)\(clean.stderr)")
        #expect(
            clean.stderr.contains("5 rows, 5 stored replies, 1 key listings and 2 settlements checked, 0 discrepancies")
        )

        // A rejected row flipped to assigned by hand.
        let database = try bench.open()
        let flipped = try #require(
            try database.prepare("SELECT license_key FROM work WHERE state = 'rejected' LIMIT 1").stepString())
        try database.execute("UPDATE work SET state = 'assigned', last_code = 800 WHERE license_key = '\(flipped)'")
        let afterFlip = try CLI.run(audit)
        #expect(afterFlip.status == 1)
        // Its last change was the listing's explanation (rejected): that is what it must still say.
        #expect(afterFlip.stdout.contains("\(flipped): recorded as assigned, but its last change was settlement"))

        // A stored reply whose bytes were altered: the signed text now claims something else.
        let victim = try #require(
            try database.prepare(
                "SELECT license_key FROM work WHERE state = 'assigned' AND license_key <> '\(flipped)' LIMIT 1"
            ).stepString())
        let replyQuery = try database.prepare(
            """
            SELECT a.id, r.id, r.signature FROM attempts a JOIN work w ON w.id = a.work_id
                JOIN signed_replies r ON r.id = a.signed_reply_id WHERE w.license_key = ?
            """)
        try replyQuery.bind(1, victim)
        #expect(try replyQuery.step())
        let attemptID = replyQuery.int(0)
        var signature = try #require(replyQuery.blob(2))
        signature[0] ^= 0x01
        let update = try database.prepare("UPDATE signed_replies SET signature = ? WHERE id = ?")
        try update.bindBlob(1, signature)
        try update.bind(2, replyQuery.int(1))
        try update.step()
        let afterEdit = try CLI.run(audit)
        #expect(afterEdit.status == 1)
        #expect(afterEdit.stdout.contains("\(victim): attempt \(attemptID): the stored reply no longer verifies"))
        #expect(afterEdit.stdout.contains("\(victim): recorded as assigned, but no stored reply verifies as 800"))
        #expect(afterEdit.stdout.contains("\(flipped): recorded as assigned"))

        // A wrong key is a configuration error, not a verdict.
        #expect(try CLI.run(["audit", "--db", bench.db, "--public-key", bench.dir.path + "/none.pem"]).status == 78)
    }
}

extension Statement {
    /// Steps once and returns the first column as text, for single-value test queries.
    func stepString() throws -> String? {
        try step() ? string(0) : nil
    }
}
