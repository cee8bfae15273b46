import Foundation
import Testing

@testable import KeyAssign

/// That `audit` still verifies key listings kept in the forms before migration 7 (migration 5:
/// its signed payload and signature; before: the whole envelope in `listings.body`), through
/// the real CLI against the sandbox. The form of migration 7 on: `ReconcileStorageTests`.
@Suite struct ReconcileEvidenceTests {
    /// One row rejected because another owner holds its key, then explained by `reconcile`.
    static func explainedBench() throws -> (bench: RunnerBench, key: String) {
        let bench = try RunnerBench(inventory: 2)
        let key = bench.inventory[0]
        try bench.server.preassign(key: key, ownerName: "Mallory Other", email: "mallory@other.example")
        _ = try bench.run(["--no-reconcile"])
        #expect(try bench.stateCounts() == ["assigned": 1, "rejected": 1])
        let result = try bench.reconcile()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try bench.count("SELECT count(*) FROM settlements WHERE rule = 'held_by_other'") == 1)
        return (bench, key)
    }

    func audit(_ bench: RunnerBench) throws -> CLI.Result {
        try CLI.run(["audit", "--db", bench.db, "--public-key", bench.server.publicKeyPath])
    }

    /// Puts listing 1 back in the form migration 5 kept: its whole signed payload in
    /// `listings.payload` (rebuilt from the kept entries), no layout.
    static func keepAsMigration5(_ bench: RunnerBench) throws {
        let db = try bench.open()
        var reader = ListingArchive.Reader(db)
        let payload = try reader.payload(listing: 1)
        let update = try db.prepare("UPDATE listings SET payload = ?1, layout = NULL WHERE id = 1")
        try update.bindBlob(1, Array(payload.buffer))
        try update.step()
    }

    @Test func aListingKeptAsItsSignedPayloadAndSignatureBeforeMigration6StillAuditsAndAnEditIsCaught() throws {
        let (bench, key) = try Self.explainedBench()
        try Self.keepAsMigration5(bench)
        // The payload is the signed JSON itself, the envelope's unsigned copy is not kept.
        #expect(
            try bench.count(
                "SELECT count(*) FROM listings WHERE length(body) = 0 AND signature IS NOT NULL AND json_extract(CAST(payload AS TEXT), '$.code') = 730"
            ) == 1)
        #expect(
            try bench.count(
                "SELECT count(*) FROM listings WHERE instr(CAST(payload AS TEXT), 'mallory@other.example') > 0 AND bytes > 2 * length(payload)"
            ) == 1)
        let clean = try audit(bench)
        #expect(clean.status == 0, "\(clean.stdout)\(clean.stderr)")

        // One byte of the payload changed by hand: the listing no longer verifies, and the
        // row it settled has no evidence.
        try bench.open().execute(
            "UPDATE listings SET payload = CAST(replace(CAST(payload AS TEXT), 'mallory@other.example', 'mallorx@other.example') AS BLOB)"
        )
        let edited = try audit(bench)
        #expect(edited.status == 1)
        #expect(edited.stdout.contains("no longer verifies (bad_signature"), "\(edited.stdout)")
        #expect(edited.stdout.contains(key) && edited.stdout.contains("without evidence"), "\(edited.stdout)")
        // Edited into something that is not bytes at all: a discrepancy too, not an error.
        try bench.open().execute("UPDATE listings SET payload = 5")
        let number = try audit(bench)
        #expect(number.status == 1, "\(number.stderr)")
        #expect(number.stdout.contains("no longer verifies"), "\(number.stdout)")
    }

    @Test func aListingKeptWholeBeforeMigration5StillAudits() async throws {
        let (bench, _) = try Self.explainedBench()
        // The envelope as a listing was stored before: the same server state, so the same
        // entries at the same positions as the listing the settlement points at.
        let reply = try await SandboxHTTP.send(
            URL(string: bench.server.baseURL + "/api/v1/get-license-keys")!, method: "GET",
            headers: ["Authorization": "Bearer \(bench.server.apiKey)"])
        #expect(reply.status == 200)
        let db = try bench.open()
        let update = try db.prepare("UPDATE listings SET body = ?1, payload = NULL, signature = NULL, layout = NULL")
        try update.bindBlob(1, reply.body)
        try update.step()
        #expect(try bench.count("SELECT count(*) FROM listings WHERE payload IS NULL AND length(body) > 0") == 1)
        let old = try audit(bench)
        #expect(old.status == 0, "\(old.stdout)\(old.stderr)")

        try db.execute(
            "UPDATE listings SET body = CAST(replace(CAST(body AS TEXT), '\"signature\":\"', '\"signature\":\"A') AS BLOB)"
        )
        let edited = try audit(bench)
        #expect(edited.status == 1)
        #expect(edited.stdout.contains("no longer verifies"), "\(edited.stdout)")
    }

    @Test func theNightReportNamesTheOwnerTheListingShowed() throws {
        let (bench, key) = try Self.explainedBench()
        let page = bench.dir.path + "/night.html"
        let result = try CLI.run(["report", "--db", bench.db, "--html", page])
        #expect(result.status == 0, "\(result.stderr)")
        let html = try String(contentsOfFile: page, encoding: .utf8)
        let row = html.components(separatedBy: "<tr>").first { $0.contains("<code>\(key)</code>") } ?? ""
        #expect(row.contains("<td class=\"owner\">Mallory Other &lt;mallory@other.example&gt; since "), "\(row)")
        #expect(row.contains("(listing 1)</td>"))
        #expect(!html.contains("not known yet"))

        // A row refused again after its settlement is no longer explained by it.
        try bench.open().execute("UPDATE work SET updated_at = '2099-01-01T00:00:00.000Z' WHERE license_key = '\(key)'")
        #expect(try CLI.run(["report", "--db", bench.db, "--html", page]).status == 0)
        #expect(try String(contentsOfFile: page, encoding: .utf8).contains("not known yet"))
    }
}
