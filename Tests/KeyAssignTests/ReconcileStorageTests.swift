import Foundation
import Testing

@testable import KeyAssign

/// Issue 21: key listings kept as evidence do not grow with the nights. Each distinct entry is
/// kept once and each listing as runs over the entries of the last one; the signed payload is
/// rebuilt byte for byte (its signature verifies); a listing that settles nothing is not kept;
/// `prune --keep-evidence` drops old listings, keeps their record and shrinks the file.
@Suite struct ReconcileStorageTests {
    /// Bytes the evidence of listing `id` added: its layout, and the entries first kept with it.
    static func evidenceBytes(_ bench: NightsBench, listing id: Int, entriesBefore: Int) throws -> Int {
        try bench.count("SELECT length(layout) FROM listings WHERE id = \(id)")
            + bench.count("SELECT coalesce(sum(length(body) + 40), 0) FROM listing_entries WHERE id > \(entriesBefore)")
    }

    @Test func aNightWhoseListingChangesInAFewEntriesCostsKilobytes() throws {
        let bench = try NightsBench(inventory: 3000)
        let first = try bench.night(1, rows: 20, heldByOther: 2)
        #expect(first.stderr.contains("2 rejected"), "\(first.stderr)")
        #expect(try bench.count("SELECT count(*) FROM settlements WHERE rule = 'held_by_other'") == 2)
        #expect(try bench.count("SELECT count(*) FROM listings") == 1)
        let entriesAfterFirst = try bench.count("SELECT max(id) FROM listing_entries")
        #expect(entriesAfterFirst == 3000)
        let envelope = try bench.count("SELECT bytes FROM listings WHERE id = 1")
        #expect(envelope > 1_000_000, "the listing of 3,000 keys is \(envelope) bytes")

        try bench.night(2, rows: 20, heldByOther: 2)
        #expect(try bench.count("SELECT count(*) FROM listings") == 2)
        // 20 entries changed (18 assigned tonight, 2 to another buyer): those, and a few
        // runs, are what the night keeps; not the listing again, not 3,000 hashes.
        let night2 = try Self.evidenceBytes(bench, listing: 2, entriesBefore: entriesAfterFirst)
        #expect(night2 < 12_000, "night 2 kept \(night2) bytes of evidence")
        #expect(try bench.count("SELECT count(*) FROM listing_entries") == 3000 + 20)
        #expect(
            try bench.count(
                "SELECT count(*) FROM listings WHERE id = 2 AND layout IS NOT NULL AND payload IS NULL AND length(body) = 0"
            ) == 1)

        let audit = try bench.audit()
        #expect(audit.status == 0, "\(audit.stdout)\(audit.stderr)")
        #expect(audit.stderr.contains("2 key listings and 4 settlements checked"), "\(audit.stderr)")
    }

    @Test func theKeptListingRebuildsByteForByteAndAnEditedEntryIsCaught() throws {
        let bench = try NightsBench(inventory: 300)
        try bench.night(1, rows: 10, heldByOther: 1)
        try bench.night(2, rows: 10, heldByOther: 1)
        let db = try bench.open()
        let keyRing = try KeyRing(specs: [bench.server.publicKeyPath])
        var reader = ListingArchive.Reader(db)
        for id: Int64 in [1, 2] {
            let payload = try reader.payload(listing: id)
            let signature = try #require(try db.prepare("SELECT signature FROM listings WHERE id = \(id)").stringRow())
            // The signature covers the payload's exact bytes: it verifies only if every byte is back.
            guard
                case .trusted(let listing) = ListingVerifier(keyRing: keyRing).verifyStored(
                    payload: payload, signature: signature, keyName: "global")
            else {
                Issue.record("listing \(id) does not verify once rebuilt")
                continue
            }
            #expect(listing.index.count == 300)
            #expect(String(decoding: payload.buffer, as: UTF8.self).hasPrefix("{\"code\":730,"))
        }
        #expect(try bench.audit().status == 0)

        // One kept entry edited by hand (the other buyer's email): the listings using it no
        // longer verify, and the rows they settled have no evidence.
        try db.execute(
            "UPDATE listing_entries SET body = CAST(replace(CAST(body AS TEXT), 'other@example.net', 'other@example.neu') AS BLOB)"
        )
        let edited = try bench.audit()
        #expect(edited.status == 1)
        #expect(
            edited.stdout.contains("listing 1: the stored key listing no longer verifies (bad_signature"),
            "\(edited.stdout)")
        #expect(edited.stdout.contains("without evidence"), "\(edited.stdout)")
        // A layout edited into nonsense: said, not a crash.
        try db.execute("UPDATE listings SET layout = x'01ff'")
        let broken = try bench.audit()
        #expect(broken.status == 1, "\(broken.stderr)")
        #expect(broken.stdout.contains("cannot be rebuilt"), "\(broken.stdout)")
    }

    @Test func aKeptListingVerifiesByHandWithOpenSSL() throws {
        let bench = try NightsBench(inventory: 300)
        try bench.night(1, rows: 10, heldByOther: 1)
        try bench.night(2, rows: 10, heldByOther: 1)
        // As docs/signatures.md says: keyassign rebuilds the payload, openssl judges it.
        let exported = try CLI.run(["audit", "--db", bench.db, "--export-listing", "2"])
        #expect(exported.status == 0, "\(exported.stderr)")
        let signature = try #require(
            try bench.open().prepare("SELECT signature FROM listings WHERE id = 2").stringRow())
        let signed = bench.dir.path + "/signed.txt"
        let sig = bench.dir.path + "/sig.bin"
        try Data(exported.stdout.utf8).base64EncodedString().write(toFile: signed, atomically: true, encoding: .utf8)
        try #require(Data(base64Encoded: signature)).write(to: URL(fileURLWithPath: sig))
        let verified = try OpenSSLCLI.run([
            "dgst", "-sha256", "-verify", bench.server.publicKeyPath, "-signature", sig, signed,
        ])
        #expect(verified.status == 0 && verified.output.contains("Verified OK"), "\(verified.output)")
        let missing = try CLI.run(["audit", "--db", bench.db, "--export-listing", "9"])
        #expect(missing.status == 65 && missing.stderr.contains("no key listing 9"), "\(missing.stderr)")
    }

    @Test func aReconcileThatSelectsNoRowStoresNoListing() throws {
        let bench = try RunnerBench(inventory: 40)
        let run = try bench.run()
        #expect(run.status == 0, "\(run.stderr)")
        let sizeBefore = try FileManager.default.attributesOfItem(atPath: bench.db)[.size] as? NSNumber
        let result = try bench.reconcile()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("0 row(s) selected"), "\(result.stderr)")
        #expect(result.stderr.contains("not stored"), "\(result.stderr)")
        #expect(try bench.count("SELECT count(*) FROM listings") == 0)
        #expect(try bench.count("SELECT count(*) FROM listing_entries") == 0)
        _ = sizeBefore
    }

    @Test func pruningKeepsARecordAuditSaysSoAndTheFileShrinks() throws {
        let bench = try NightsBench(inventory: 3000)
        for night in 1...3 { try bench.night(night, rows: 10, heldByOther: 1) }
        #expect(try bench.count("SELECT count(*) FROM listings") == 3)
        #expect(try bench.count("PRAGMA auto_vacuum") == 2)  // incremental, from the first migration
        // Listings 1 and 2 were fetched 100 days ago.
        try bench.open().execute("UPDATE listings SET fetched_at = '2020-01-01T00:00:00.000Z' WHERE id IN (1, 2)")
        let prune = try CLI.run(["prune", "--db", bench.db, "--keep-evidence", "30"])
        #expect(prune.status == 0, "\(prune.stderr)")
        #expect(prune.stdout.contains("pruned 2 key listing(s)"), "\(prune.stdout)")
        #expect(
            try bench.count(
                "SELECT count(*) FROM listings WHERE pruned_at IS NOT NULL AND length(payload_sha256) = 64 AND layout IS NULL"
            ) == 2)
        // Listing 3 copied its entry list from listing 2: it stands alone now, and verifies.
        #expect(prune.stdout.contains("1 kept listing(s) rewritten standalone"), "\(prune.stdout)")
        #expect(
            try bench.count("SELECT count(*) FROM listings WHERE id = 3 AND base_id IS NULL AND layout IS NOT NULL")
                == 1)
        let audit = try bench.audit()
        #expect(audit.status == 0, "\(audit.stdout)\(audit.stderr)")
        #expect(audit.stdout.components(separatedBy: "evidence pruned on ").count - 1 == 2, "\(audit.stdout)")
        #expect(audit.stderr.contains("2 row(s) settled by evidence pruned on purpose"), "\(audit.stderr)")

        // Everything pruned: the entries go, and the file gives their pages back.
        let before = bench.fileBytes
        let all = try CLI.run(["prune", "--db", bench.db, "--keep-evidence", "0"])
        #expect(all.status == 0, "\(all.stderr)")
        #expect(try bench.count("SELECT count(*) FROM listing_entries") == 0)
        let after = bench.fileBytes
        #expect(after < before - 800_000, "the file went from \(before) to \(after) bytes")
        #expect(try bench.audit().status == 0)
    }

    @Test func aDatabaseWithoutIncrementalVacuumIsConvertedByItsFirstPrune() throws {
        let bench = try NightsBench(inventory: 3000)
        try bench.night(1, rows: 10, heldByOther: 1)
        // As a database made before issue 21 is: no auto_vacuum.
        try bench.open().execute("PRAGMA auto_vacuum = NONE; VACUUM;")
        #expect(try bench.count("PRAGMA auto_vacuum") == 0)
        let before = bench.fileBytes
        let prune = try CLI.run(["prune", "--db", bench.db, "--keep-evidence", "0"])
        #expect(prune.status == 0, "\(prune.stderr)")
        #expect(prune.stdout.contains("converted to incremental vacuum"), "\(prune.stdout)")
        #expect(try bench.count("PRAGMA auto_vacuum") == 2)
        #expect(bench.fileBytes < before - 800_000, "the file went from \(before) to \(bench.fileBytes) bytes")
    }
}

extension Statement {
    /// The first column of the first row as text.
    func stringRow() throws -> String? {
        guard try step() else { return nil }
        return string(0)
    }
}
