import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Issue 21, the per-row history: a trusted reply is kept as what its signature covers
/// (payload and signature bytes, `signed_replies`, migration 8), each distinct one once, and
/// `audit` re-verifies that form and the envelopes kept whole before it.
@Suite struct SignatureCompactReplyTests {
    /// Bytes of pages (dbstat) of the tables and indexes an attempt writes, per attempt.
    static func attemptBytesPerAttempt(_ db: Database) throws -> Double {
        let pages =
            try db.scalarInt(
                """
                SELECT sum(pgsize) FROM dbstat WHERE name IN
                    ('attempts', 'attempts_by_work', 'attempts_by_run', 'signed_replies', 'signing_keys')
                """) ?? 0
        let attempts = try db.scalarInt("SELECT count(*) FROM attempts") ?? 1
        return Double(pages) / Double(max(attempts, 1))
    }

    @Test func anAttemptWithItsSignedReplyCostsAFractionOfTheEnvelope() throws {
        // Before: each attempt kept its whole envelope (~590 bytes) and the key's file and
        // fingerprint (~100 bytes): ~850 bytes of pages per attempt with its indexes.
        let bench = try RunnerBench(inventory: 600)
        let result = try bench.run()
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let db = try bench.open()
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE verdict = 'trusted'") == 600)
        let perAttempt = try Self.attemptBytesPerAttempt(db)
        #expect(perAttempt < 300, "bytes of pages per attempt: \(perAttempt)")
        // What a row keeps of its reply, bytes of values: nothing in `reply`; the signed reply
        // it shares, counted once.
        let stored =
            try db.scalarInt(
                """
                SELECT coalesce(sum(length(reply)), 0) + coalesce(sum(length(signing_key_file) + length(signing_key_sha256)), 0)
                    + (SELECT coalesce(sum(length(payload) + length(signature)), 0) FROM signed_replies)
                FROM attempts
                """) ?? 0
        #expect(Double(stored) / 600 < 120, "reply bytes per attempt: \(Double(stored) / 600)")
        // Two assignments in one second are the same signed reply: far fewer than attempts.
        let distinct = try bench.count("SELECT count(*) FROM signed_replies")
        #expect(distinct >= 1 && distinct < 300, "signed replies: \(distinct)")
        // Even a reply no other attempt shares is smaller than its envelope: the payload and
        // 256 signature bytes, against ~590 bytes of envelope.
        let largest = try bench.count("SELECT max(length(payload) + length(signature)) FROM signed_replies")
        #expect(largest < 360, "largest signed reply: \(largest)")
        #expect(try bench.count("SELECT count(*) FROM signing_keys") == 1)
        let audit = try CLI.run(["audit", "--db", bench.db, "--public-key", bench.server.publicKeyPath])
        #expect(audit.status == 0, "\(audit.stdout)\(audit.stderr)")
        #expect(audit.stderr.contains("600 stored replies"), "\(audit.stderr)")
    }

    @Test func untrustedRepliesAreStillKeptAsTheyCame() throws {
        var faults = SandboxConfiguration.Faults()
        faults.badSignature = 0.3
        faults.seed = 5
        let bench = try RunnerBench(inventory: 30)
        try bench.restart(faults: faults)
        _ = try bench.run(["--max-attempts", "1", "--no-reconcile"])
        let bad = try bench.count("SELECT count(*) FROM attempts WHERE verdict = 'bad_signature'")
        #expect(bad > 0)
        // Attack evidence keeps its bytes: the envelope as received, and no compact form.
        #expect(
            try bench.count(
                "SELECT count(*) FROM attempts WHERE verdict = 'bad_signature' AND reply IS NOT NULL AND signed_reply_id IS NULL"
            ) == bad)
        #expect(
            try bench.count(
                "SELECT count(*) FROM attempts WHERE verdict = 'trusted' AND reply IS NULL AND signed_reply_id IS NOT NULL"
            ) == bench.count("SELECT count(*) FROM attempts WHERE verdict = 'trusted'"))
    }

    @Test func auditCatchesAnEditedCompactPayloadOrKeyName() throws {
        let bench = try RunnerBench(inventory: 4)
        #expect(try bench.run(["--no-reconcile"]).status == 0)
        let audit = ["audit", "--db", bench.db, "--public-key", bench.server.publicKeyPath]
        #expect(try CLI.run(audit).status == 0)
        let db = try bench.open()
        let original = try #require(try db.prepare("SELECT id, payload FROM signed_replies LIMIT 1").stepRow())
        let replyID = original.int(0)
        let payload = try #require(original.blob(1))
        let text = String(decoding: payload, as: UTF8.self)
        // The signed code made 801: still JSON, still the shape of a reply, but not what was signed.
        let forged = text.replacingOccurrences(of: "800", with: "801")
        #expect(forged != text)
        let update = try db.prepare("UPDATE signed_replies SET payload = ?1 WHERE id = ?2")
        try update.bindBlob(1, Array(forged.utf8))
        try update.bind(2, replyID)
        try update.step()
        let afterPayload = try CLI.run(audit)
        #expect(afterPayload.status == 1)
        #expect(
            afterPayload.stdout.contains("the stored reply no longer verifies (bad_signature"), "\(afterPayload.stdout)"
        )
        #expect(afterPayload.stdout.contains("recorded as assigned, but no stored reply verifies as 800"))

        let restore = try db.prepare("UPDATE signed_replies SET payload = ?1 WHERE id = ?2")
        try restore.bindBlob(1, payload)
        try restore.bind(2, replyID)
        try restore.step()
        #expect(try CLI.run(audit).status == 0)

        // The key name it was signed under, edited: no key of that name verifies it.
        try db.execute("UPDATE signing_keys SET name = 'product'")
        let afterName = try CLI.run(audit)
        #expect(afterName.status == 1)
        #expect(afterName.stdout.contains("the stored reply no longer verifies (unknown_key"), "\(afterName.stdout)")

        // The signed reply deleted under its attempts (the schema refuses it; the sqlite3 shell,
        // whose foreign keys are off, does not): they are no longer backed.
        try db.execute("UPDATE signing_keys SET name = 'global'")
        #expect(throws: DatabaseError.self) { try db.execute("DELETE FROM signed_replies WHERE id = \(replyID)") }
        try db.execute("PRAGMA foreign_keys = OFF")
        try db.execute("DELETE FROM signed_replies WHERE id = \(replyID)")
        let afterDelete = try CLI.run(audit)
        #expect(afterDelete.status == 1)
        #expect(afterDelete.stdout.contains("the stored reply no longer verifies"), "\(afterDelete.stdout)")
    }

    /// Attempts recorded before migration 8 keep their whole envelope in `reply`, with the
    /// key's file and fingerprint: a database holds both forms, and audit verifies both.
    @Test func envelopesKeptWholeBeforeStillAudit() async throws {
        let bench = try RunnerBench(inventory: 3, unknown: 1)
        #expect(try bench.run(["--no-reconcile"]).status == 0)  // the unknown key: rejected
        // A real envelope from the same server, byte for byte as it sends it.
        let url = try #require(URL(string: bench.server.baseURL + "/api/v1/assign-license-key"))
        let fresh = try await SandboxHTTP.post(
            url, form: [("api_key", bench.server.apiKey), ("license_key", "no-such-key")])
        let envelope = Array(fresh.body)
        #expect(String(decoding: envelope, as: UTF8.self).contains("\"response_base64\""))
        let db = try bench.open()
        let key = try #require(try db.prepare("SELECT sha256, file FROM signing_keys").stepRow())
        let (sha, file) = (try #require(key.string(0)), try #require(key.string(1)))
        // The rejected row's attempt as a version-7 database holds it: its envelope whole.
        let rejected = try #require(
            try db.prepare(
                "SELECT a.id FROM attempts a JOIN work w ON w.id = a.work_id WHERE w.state = 'rejected'"
            ).stepRow()
        ).int(0)
        let old = try db.prepare(
            """
            UPDATE attempts SET reply = ?1, signing_key_sha256 = ?2, signing_key_file = ?3, signed_reply_id = NULL
            WHERE id = ?4
            """)
        try old.bindBlob(1, envelope)
        try old.bind(2, sha)
        try old.bind(3, file)
        try old.bind(4, rejected)
        try old.step()
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE reply IS NOT NULL") == 1)
        #expect(try bench.count("SELECT count(*) FROM attempts WHERE signed_reply_id IS NOT NULL") == 3)
        let audit = ["audit", "--db", bench.db, "--public-key", bench.server.publicKeyPath]
        let both = try CLI.run(audit)
        #expect(both.status == 0, "\(both.stdout)\(both.stderr)")
        #expect(both.stderr.contains("4 stored replies"), "\(both.stderr)")
        #expect(both.stderr.contains("audit: 4 stored replies verified by global"), "\(both.stderr)")

        // history names the signing key for both forms.
        let history = try CLI.run(["history", "--db", bench.db, bench.inventory[0]])
        #expect(history.stdout.contains("\ttrusted\tsha256:\(sha) (\(file))\t"), "\(history.stdout)")

        // Both export as envelopes that `keyassign verify` trusts: the old one byte for byte.
        let exported = try CLI.run(["audit", "--db", bench.db, "--export-reply", String(rejected)])
        #expect(exported.status == 0)
        #expect(Array(exported.stdout.utf8) == envelope)
        let compactAttempt = try bench.count("SELECT min(id) FROM attempts WHERE signed_reply_id IS NOT NULL")
        let rebuilt = try CLI.run(["audit", "--db", bench.db, "--export-reply", String(compactAttempt)])
        #expect(rebuilt.status == 0)
        let files = try TemporaryDirectory()
        try Data(exported.stdout.utf8).write(to: URL(fileURLWithPath: files.path + "/old.json"))
        try Data(rebuilt.stdout.utf8).write(to: URL(fileURLWithPath: files.path + "/compact.json"))
        let verify = try CLI.run(
            [
                "verify", "--public-key", bench.server.publicKeyPath, files.path + "/old.json",
                files.path + "/compact.json",
            ])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        #expect(verify.stdout.contains("compact.json\ttrusted\tok\t800"), "\(verify.stdout)")
        #expect(verify.stdout.contains("old.json\ttrusted\tok\t801"), "\(verify.stdout)")

        // An edited old envelope is still caught.
        var edited = envelope
        let at = try #require(
            edited.indices.last { edited[$0] == UInt8(ascii: "=") || edited[$0] == UInt8(ascii: "A") })
        edited[at] = edited[at] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let tamper = try db.prepare("UPDATE attempts SET reply = ?1 WHERE id = ?2")
        try tamper.bindBlob(1, edited)
        try tamper.bind(2, rejected)
        try tamper.step()
        let afterEdit = try CLI.run(audit)
        #expect(afterEdit.status == 1, "\(afterEdit.stdout)")
        #expect(
            afterEdit.stdout.contains("attempt \(rejected): the stored reply no longer verifies"), "\(afterEdit.stdout)"
        )
    }

    @Test func theRebuiltEnvelopeCarriesTheSignedTextExactly() throws {
        let payload = Array(#"{"code":800,"message":"License key assigned","timestamp":1708999933}"#.utf8)
        for length in 0..<6 {
            let bytes = Array(payload.prefix(payload.count - length))
            #expect(CompactReply.base64(bytes) == Array(Data(bytes).base64EncodedData()))
        }
        let signature = (0..<256).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let envelope = Array(
            """
            {"response":{"code":800,"message":"License key assigned","timestamp":1708999933},\
            "response_base64":"\(Data(payload).base64EncodedString().replacingOccurrences(of: "/", with: "\\/"))",\
            "private_key_used":"glo\\"bal","signature":"\(Data(signature).base64EncodedString())"}
            """.utf8)
        let compact = try #require(CompactReply(envelope: envelope))
        #expect(compact.payload == payload && compact.signature == signature && compact.keyName == "glo\"bal")
        let again = try #require(CompactReply(envelope: compact.envelope))
        #expect(again == compact)
        // One spelling per byte string: what is encoded decodes back, and nothing else decodes.
        for text in ["", "eQ==", "eWU=", "eWVz", "eWVzIQ==", "AAAA", "+/+/"] {
            let bytes = try #require(Base64Strict.decode(text.utf8), "\(text)")
            #expect(CompactReply.base64(bytes) == Array(text.utf8), "\(text)")
        }
        for text in ["eR==", "eWV=", "eQ=", "eQ", "e===", "====", "eQ==eQ==", "e Q==", "eQ=A", "-_==", "eQ\n="] {
            #expect(Base64Strict.decode(text.utf8) == nil, "\(text)")
        }
        // A non-canonical response_base64 cannot be rebuilt from its payload: kept whole.
        let loose = Array(
            #"{"response":{},"response_base64":"eR==","private_key_used":"global","signature":"AAAA"}"#.utf8)
        #expect(CompactReply(envelope: loose) == nil)
    }
}

extension Statement {
    /// Steps once; the statement itself when there was a row.
    fileprivate func stepRow() throws -> Statement? {
        try step() ? self : nil
    }
}
