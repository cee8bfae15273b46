import Foundation
import Testing

@testable import KeyAssign

/// Issue 21: key listings kept as evidence do not grow with the nights. Each distinct entry is
/// kept once and each listing as runs over the entries of the last one; the signed payload is
/// rebuilt byte for byte (its signature verifies); a listing that settles nothing is not kept;
/// `prune --keep-evidence` drops old listings, keeps their record and shrinks the file.
@Suite struct ReconcileStorageTests {
    /// Bytes the evidence of listing `id` added: its layout, and the entries first kept with it
    /// (deflated in chunks, with their digests; 40 bytes a row for the rest of each chunk's row).
    static func evidenceBytes(_ bench: NightsBench, listing id: Int, entriesBefore: Int) throws -> Int {
        try bench.count("SELECT length(layout) FROM listings WHERE id = \(id)")
            + bench.count(
                """
                SELECT coalesce(sum(length(body) + length(digests) + 40), 0) FROM listing_chunks
                WHERE first_entry > \(entriesBefore)
                """)
    }

    /// Every kept chunk inflated, changed by `edit`, and deflated again: an edit by someone
    /// who knows the format, which only the signature can catch.
    static func editEntries(_ db: Database, _ edit: (String) -> String) throws {
        let select = try db.prepare("SELECT first_entry, bytes, body FROM listing_chunks")
        var chunks: [(Int64, Int, [UInt8])] = []
        while try select.step() { chunks.append((select.int(0), Int(select.int(1)), select.blob(2) ?? [])) }
        select.reset()
        let update = try db.prepare(
            "UPDATE listing_chunks SET bytes = ?1, body = ?2, digests = ?4 WHERE first_entry = ?3")
        let digester = try EntryDigest.Maker()
        for (first, inflated, body) in chunks {
            let chunk = try body.withUnsafeBytes {
                try ListingChunk.decode(firstEntry: first, inflatedBytes: inflated, body: $0)
            }
            let edited = chunk.ids.indices.map { Array(edit(String(decoding: chunk.entry($0), as: UTF8.self)).utf8) }
            let encoded = try ListingChunk.encode(ids: chunk.ids, digester: digester) { number in
                edited[number].withUnsafeBytes { UnsafeRawBufferPointer(start: $0.baseAddress, count: $0.count) }
            }
            try update.bind(1, Int64(encoded.inflatedBytes))
            try update.bindBlob(2, encoded.body)
            try update.bind(3, first)
            try update.bindBlob(4, encoded.digests)
            try update.step()
            update.reset()
        }
    }

    @Test func aNightWhoseListingChangesInAFewEntriesCostsKilobytes() throws {
        let bench = try NightsBench(inventory: 3000)
        let first = try bench.night(1, rows: 20, heldByOther: 2)
        #expect(first.stderr.contains("2 rejected"), "\(first.stderr)")
        #expect(try bench.count("SELECT count(*) FROM settlements WHERE rule = 'held_by_other'") == 2)
        #expect(try bench.count("SELECT count(*) FROM listings") == 1)
        let entriesAfterFirst = try bench.count("SELECT max(last_entry) FROM listing_chunks")
        #expect(entriesAfterFirst == 3000)
        #expect(try bench.count("SELECT count(*) FROM listing_entries") == 0)
        let envelope = try bench.count("SELECT bytes FROM listings WHERE id = 1")
        #expect(envelope > 1_000_000, "the listing of 3,000 keys is \(envelope) bytes")
        // The first listing's entries, deflated together: ~280 bytes each as signed.
        let inflated = try bench.count("SELECT sum(bytes) FROM listing_chunks")
        let firstEvidence = try Self.evidenceBytes(bench, listing: 1, entriesBefore: 0)
        #expect(inflated > 3000 * 250, "the entries inflate to \(inflated) bytes")
        // Kept as signed, each was ~330 bytes, and 96 more for its SHA-256 and that index;
        // now ~27 deflated and 17 of digest (its id's step and 16 bytes of SHA-256).
        #expect(firstEvidence < 3000 * 55, "the first listing kept \(firstEvidence) bytes of evidence")

        try bench.night(2, rows: 20, heldByOther: 2)
        #expect(try bench.count("SELECT count(*) FROM listings") == 2)
        // 20 entries changed (18 assigned tonight, 2 to another buyer): those, and a few
        // runs, are what the night keeps; not the listing again, not 3,000 hashes.
        let night2 = try Self.evidenceBytes(bench, listing: 2, entriesBefore: entriesAfterFirst)
        // Deflated together, 20 entries, their digests and the runs take ~1.4 kB (kept as
        // signed: ~7 kB).
        #expect(night2 < 2_500, "night 2 kept \(night2) bytes of evidence")
        #expect(try bench.count("SELECT sum(entries) FROM listing_chunks") == 3000 + 20)
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
        try Self.editEntries(db) { $0.replacingOccurrences(of: "other@example.net", with: "other@example.neu") }
        let edited = try bench.audit()
        #expect(edited.status == 1)
        #expect(
            edited.stdout.contains("listing 1: the stored key listing no longer verifies (bad_signature"),
            "\(edited.stdout)")
        #expect(edited.stdout.contains("without evidence"), "\(edited.stdout)")
        // A chunk's deflated bytes changed: it no longer inflates, said as such.
        try db.execute("UPDATE listing_chunks SET body = substr(body, 1, 40) || x'0000' || substr(body, 43)")
        let damaged = try bench.audit()
        #expect(damaged.status == 1, "\(damaged.stderr)")
        #expect(damaged.stdout.contains("cannot be rebuilt: chunk"), "\(damaged.stdout)")
        // A layout edited into nonsense: said, not a crash.
        try db.execute("UPDATE listings SET layout = x'01ff'")
        let broken = try bench.audit()
        #expect(broken.status == 1, "\(broken.stderr)")
        #expect(broken.stdout.contains("cannot be rebuilt"), "\(broken.stdout)")
    }

    /// Entries kept before migration 10 (`listing_entries`, each as signed with its SHA-256):
    /// such a listing still rebuilds and audits, the next night's listing is matched against
    /// it (only what changed is deflated) and copies its entry list, and pruning drops both.
    @Test func aListingKeptInMigration7sFormStillAuditsAndTheNextNightBuildsOnIt() throws {
        let bench = try NightsBench(inventory: 3000)
        try bench.night(1, rows: 10, heldByOther: 1)
        do {
            // Back to migration 7's form: every entry plain, found by its SHA-256.
            let db = try bench.open()
            let select = try db.prepare("SELECT first_entry, bytes, body FROM listing_chunks")
            let insert = try db.prepare("INSERT INTO listing_entries (id, sha256, body) VALUES (?1, ?2, ?3)")
            while try select.step() {
                let body = select.blob(2) ?? []
                let chunk = try body.withUnsafeBytes {
                    try ListingChunk.decode(firstEntry: select.int(0), inflatedBytes: Int(select.int(1)), body: $0)
                }
                for (index, id) in chunk.ids.enumerated() {
                    let entry = Array(chunk.entry(index))
                    let digest = try SHA256Digest()
                    entry.withUnsafeBytes { digest.update($0) }
                    let hex = Array(digest.finalHex().utf8)
                    let sha = stride(from: 0, to: hex.count, by: 2).map {
                        UInt8(String(decoding: hex[$0..<($0 + 2)], as: UTF8.self), radix: 16)!
                    }
                    try insert.bind(1, id)
                    try insert.bindBlob(2, sha)
                    try insert.bindBlob(3, entry)
                    try insert.step()
                    insert.reset()
                }
            }
            select.reset()
            try db.execute("DELETE FROM listing_chunks")
        }
        #expect(try bench.count("SELECT count(*) FROM listing_entries") == 3000)
        let old = try bench.audit()
        #expect(old.status == 0, "\(old.stdout)\(old.stderr)")
        #expect(old.stderr.contains("1 key listings"), "\(old.stderr)")

        try bench.night(2, rows: 10, heldByOther: 1)
        // Ten entries changed (nine assigned tonight, one to another buyer): only they are new.
        #expect(try bench.count("SELECT sum(entries) FROM listing_chunks") == 10)
        #expect(try bench.count("SELECT min(first_entry) FROM listing_chunks") == 3001)
        #expect(try bench.count("SELECT base_id FROM listings WHERE id = 2") == 1)
        let both = try bench.audit()
        #expect(both.status == 0, "\(both.stdout)\(both.stderr)")
        #expect(both.stderr.contains("2 key listings"), "\(both.stderr)")
        let exported = try CLI.run(["audit", "--db", bench.db, "--export-listing", "2"])
        #expect(exported.status == 0 && exported.stdout.hasPrefix("{\"code\":730,"), "\(exported.stderr)")

        let prune = try CLI.run(["prune", "--db", bench.db, "--keep-evidence", "0"])
        #expect(prune.status == 0, "\(prune.stderr)")
        #expect(try bench.count("SELECT count(*) FROM listing_entries") == 0)
        #expect(try bench.count("SELECT count(*) FROM listing_chunks") == 0)
        #expect(try bench.audit().status == 0)
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
        // The 20 entries that nights 2 and 3 changed are gone from the first listing's chunks,
        // which were written again with the rest: what listing 3 uses is what is left.
        #expect(prune.stdout.contains("(20 entries no kept listing uses deleted"), "\(prune.stdout)")
        #expect(try bench.count("SELECT sum(entries) FROM listing_chunks") == 3000)
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
        let kept = Int64(try bench.count("SELECT sum(length(body)) FROM listing_chunks"))
        #expect(kept > 50_000, "\(kept) bytes of deflated entries")
        let all = try CLI.run(["prune", "--db", bench.db, "--keep-evidence", "0"])
        #expect(all.status == 0, "\(all.stderr)")
        #expect(try bench.count("SELECT count(*) FROM listing_chunks") == 0)
        let after = bench.fileBytes
        #expect(after < before - kept * 3 / 4, "the file went from \(before) to \(after) bytes")
        #expect(try bench.count("PRAGMA freelist_count") == 0)
        #expect(try bench.audit().status == 0)
    }

    @Test func aDatabaseWithoutIncrementalVacuumIsConvertedByItsFirstPrune() throws {
        let bench = try NightsBench(inventory: 3000)
        try bench.night(1, rows: 10, heldByOther: 1)
        // As a database made before issue 21 is: no auto_vacuum.
        try bench.open().execute("PRAGMA auto_vacuum = NONE; VACUUM;")
        #expect(try bench.count("PRAGMA auto_vacuum") == 0)
        let before = bench.fileBytes
        let kept = Int64(try bench.count("SELECT sum(length(body)) FROM listing_chunks"))
        let prune = try CLI.run(["prune", "--db", bench.db, "--keep-evidence", "0"])
        #expect(prune.status == 0, "\(prune.stderr)")
        #expect(prune.stdout.contains("converted to incremental vacuum"), "\(prune.stdout)")
        #expect(try bench.count("PRAGMA auto_vacuum") == 2)
        #expect(
            kept > 50_000 && bench.fileBytes < before - kept * 3 / 4,
            "the file went from \(before) to \(bench.fileBytes) bytes")
    }
}

extension Statement {
    /// The first column of the first row as text.
    func stringRow() throws -> String? {
        guard try step() else { return nil }
        return string(0)
    }
}
