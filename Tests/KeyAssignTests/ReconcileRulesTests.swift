import Foundation
import Testing

@testable import KeyAssign

/// The reconcile rules and the listing verifier, without sockets: pure values in, decisions out.
@Suite struct ReconcileRulesTests {
    static func entry(status: String?, name: String? = nil, email: String? = nil, at: String? = nil) -> ListingEntry {
        ListingEntry(
            index: 0, licenseKey: "K", status: status, ownerName: name, ownerEmail: email, assignedAt: at, text: "{}")
    }

    static let now = 1_800_000_000.0

    @Test func eachRuleWithItsExample() {
        let row = ReconcileRules.Row(
            state: .uncertain, ownerName: "Ada", email: "ada@example.com", attempts: 2,
            lastAttemptStart: Self.now - 100, lastReplyEnd: Self.now - 99, requestTimeout: 30)
        func decide(_ entry: ListingEntry?, _ row: ReconcileRules.Row = row, at: Double = Self.now)
            -> ReconcileRules.Decision
        {
            ReconcileRules.decide(row, entry: entry, takenAt: at, maxAttempts: 5)
        }
        // Held by this buyer, whatever the case and spaces of the email.
        let mine = decide(
            Self.entry(status: "assigned", name: "A. L.", email: " ADA@Example.com ", at: "2026-12-01 10:00:00"))
        #expect(mine.rule == .heldByBuyer && mine.state == .assigned && mine.settled)
        // A rejected row whose key this buyer already held is not a rejection.
        var rejected = row
        rejected.state = .rejected
        #expect(decide(Self.entry(status: "active", email: "ada@example.com"), rejected).state == .assigned)
        // Another owner: rejected, naming the owner's email and assigned_at.
        let other = decide(
            Self.entry(status: "assigned", name: "Bob", email: "bob@example.com", at: "2026-12-01 10:00:00"))
        #expect(other.rule == .heldByOther && other.state == .rejected)
        #expect(other.reason.contains("bob@example.com") && other.reason.contains("2026-12-01 10:00:00"))
        // Available, late enough: back to retry; for a rejected row, an explanation.
        let available = decide(Self.entry(status: "available"))
        #expect(available.rule == .available && available.state == .retry && available.settled)
        let refused = decide(Self.entry(status: "available"), rejected)
        #expect(refused.state == .rejected && refused.reason.contains("refused a key"))
        // ...whatever its attempts: --max-attempts bounds one run, not a row's lifetime (issue 18).
        var spent = row
        spent.attempts = 5
        #expect(decide(Self.entry(status: "available"), spent).state == .retry)
        // Another status, no owner: rejected with that status.
        let suspended = decide(Self.entry(status: "suspended"))
        #expect(suspended.rule == .status && suspended.state == .rejected && suspended.reason.contains("'suspended'"))
        // Not listed: a rejected row is unknown to the server...
        let unknown = decide(nil, rejected)
        #expect(
            unknown.rule == .unknown && unknown.state == .rejected && unknown.reason.contains("unknown to the server"))
        // ...but absence proves nothing for a row that may have been delivered (issue 18, item 2):
        // a listing scoped to a product, paginated or cut short leaves keys out.
        for state in [WorkState.uncertain, .retry] {
            var maybe = row
            maybe.state = state
            let absent = decide(nil, maybe)
            #expect(absent.rule == .unknown && absent.state == state && !absent.settled)
            #expect(absent.reason.contains("not in the server's listing"))
        }
    }

    /// Issue 18, item 4: an assigned row is confirmed against the listing by key and email.
    @Test func assignedRowsAreConfirmedOrContradicted() {
        let row = ReconcileRules.Row(
            state: .assigned, ownerName: "Ada", email: "ada@example.com", attempts: 1,
            lastAttemptStart: Self.now - 100, lastReplyEnd: Self.now - 99, requestTimeout: 30)
        func decide(_ entry: ListingEntry?, at: Double = Self.now) -> ReconcileRules.Decision {
            ReconcileRules.decide(row, entry: entry, takenAt: at, maxAttempts: 5)
        }
        let mine = decide(Self.entry(status: "assigned", email: " ADA@example.com"))
        #expect(mine.state == .assigned && mine.settled && !ReconcileRules.contradicts(mine, from: .assigned))
        let other = decide(
            Self.entry(status: "assigned", name: "Bob", email: "bob@example.com", at: "2026-12-02 03:04:05"))
        #expect(
            other.rule == .heldByOther && other.state == .rejected && ReconcileRules.contradicts(other, from: .assigned)
        )
        #expect(
            other.reason.contains("changed after our assignment") && other.reason.contains("bob@example.com")
                && other.reason.contains("2026-12-02 03:04:05"))
        let available = decide(Self.entry(status: "available"))
        #expect(available.state == .retry && ReconcileRules.contradicts(available, from: .assigned))
        #expect(available.reason.contains("changed after our assignment"))
        // Taken before our 800 could have been processed: proves nothing.
        let early = decide(Self.entry(status: "available"), at: Self.now - 99.5)
        #expect(
            early.rule == .tooEarly && early.state == .assigned && !ReconcileRules.contradicts(early, from: .assigned))
        // Not listed: a partial listing contradicts nothing.
        let absent = decide(nil)
        #expect(absent.state == .assigned && !absent.settled && !ReconcileRules.contradicts(absent, from: .assigned))
    }

    @Test func theRaceRule() {
        let available = Self.entry(status: "available")
        var row = ReconcileRules.Row(
            state: .uncertain, ownerName: nil, email: "a@x", attempts: 1,
            lastAttemptStart: Self.now - 10, lastReplyEnd: nil, requestTimeout: 30)
        // Taken before start + timeout: the last attempt may still be processed. It waits.
        let early = ReconcileRules.decide(row, entry: available, takenAt: Self.now, maxAttempts: 5)
        #expect(early.rule == .tooEarly && !early.settled && early.state == .uncertain)
        #expect(ReconcileRules.decide(row, entry: available, takenAt: Self.now + 20.5, maxAttempts: 5).state == .retry)
        // ...and after the row's last reply.
        row.lastReplyEnd = Self.now + 40
        #expect(!ReconcileRules.decide(row, entry: available, takenAt: Self.now + 30, maxAttempts: 5).settled)
        #expect(ReconcileRules.decide(row, entry: available, takenAt: Self.now + 41, maxAttempts: 5).settled)
        // Assignments never go backwards: an owner is proof whenever the listing was taken.
        let owned = Self.entry(status: "assigned", email: "a@x")
        #expect(ReconcileRules.decide(row, entry: owned, takenAt: Self.now - 1000, maxAttempts: 5).state == .assigned)
        // A recovered row whose key is available too early just stays in retry (sent as before).
        row.state = .retry
        #expect(ReconcileRules.decide(row, entry: available, takenAt: Self.now, maxAttempts: 5).state == .retry)
    }

    @Test func withoutEmailsTheNamesDecide() {
        let row = ReconcileRules.Row(state: .uncertain, ownerName: " Jane Doe", email: nil)
        #expect(ReconcileRules.ruleFor(row, entry: Self.entry(status: "assigned", name: "jane doe")) == .heldByBuyer)
        #expect(ReconcileRules.ruleFor(row, entry: Self.entry(status: "assigned", name: "John")) == .heldByOther)
        #expect(
            ReconcileRules.ruleFor(row, entry: Self.entry(status: "assigned", name: "jane doe", email: "j@x"))
                == .heldByOther)
    }

    // MARK: the listing verifier

    static func listing(
        code: String = "730", keys: [(String, String?)] = [("k-1", nil), ("k-2", "o@x")],
        timestamp: Int = Int(Timestamps.now())
    ) -> String {
        let entries = keys.enumerated().map { offset, key in
            #"{"id":\#(offset + 1),"license_key":"\#(key.0)","owner_name":\#(key.1 == nil ? "null" : "\"Owner\""),"owner_email":\#(key.1.map { "\"\($0)\"" } ?? "null"),"assigned_at":\#(key.1 == nil ? "null" : "\"2026-12-01 10:00:00\""),"status":"\#(key.1 == nil ? "available" : "assigned")","created_at":"2024-02-24T21:21:24.000000Z"}"#
        }
        return
            #"{"code":\#(code),"message":"License keys","license_keys":[\#(entries.joined(separator: ","))],"timestamp":\#(timestamp)}"#
    }

    static func verify(_ builder: EnvelopeBuilder, maxAge: Double? = 300) throws -> ListingVerdict {
        let verifier = ListingVerifier(keyRing: try TestKeys.ring())
        return verifier.verify(OwnedBytes(copying: Array(try builder.json().utf8)), maxAge: maxAge)
    }

    @Test func aSignedListingVerifiesAndIndexesItsKeys() throws {
        guard case .trusted(let listing) = try Self.verify(EnvelopeBuilder(payload: Self.listing())) else {
            Issue.record("a signed listing must verify")
            return
        }
        #expect(listing.code == 730 && listing.index.count == 2)
        #expect(listing.index.entry(forKey: "k-2")?.ownerEmail == "o@x")
        #expect(listing.index.entry(forKey: "k-1")?.status == "available")
        #expect(listing.index.entry(forKey: "k-3") == nil)
        #expect(listing.index.entry(at: 1)?.text.hasPrefix(#"{"id":2,"#) == true)
    }

    @Test func theCodeMayBeAStringOfDigits() throws {
        guard case .trusted(let listing) = try Self.verify(EnvelopeBuilder(payload: Self.listing(code: "\"730\"")))
        else {
            Issue.record("a string code must be read")
            return
        }
        #expect(listing.code == 730)
        guard
            case .untrusted(.payloadMissingFields, _) = try Self.verify(
                EnvelopeBuilder(payload: Self.listing(code: "\"7x\"")))
        else {
            Issue.record("a code that is not digits must be refused")
            return
        }
    }

    @Test func escapedSlashesAndReorderedMembersStillVerify() throws {
        var builder = EnvelopeBuilder(
            payload: Self.listing(keys: [("k/1", "o@x")]).replacingOccurrences(of: "k/1", with: #"k\/1"#))
        // The unsigned copy with its members in another order is the same value.
        builder.response = builder.payload.replacingOccurrences(
            of: #"{"code":730,"message":"License keys","#,
            with: #"{"message":"License keys","code":730,"#)
        // The server may escape the slashes of the base64 text itself.
        let text = builder.signedText
        builder.signature = try TestKeys.global.signBase64(text)
        builder.responseBase64 = text.replacingOccurrences(of: "/", with: #"\/"#)
        let verifier = ListingVerifier(keyRing: try TestKeys.ring())
        let json = try builder.json()
        guard case .trusted(let listing) = verifier.verify(OwnedBytes(copying: Array(json.utf8)), maxAge: nil) else {
            Issue.record("escaped slashes and reordered members must verify: \(json.prefix(200))")
            return
        }
        #expect(listing.index.entry(forKey: "k/1")?.ownerEmail == "o@x")
    }

    @Test func forgedAlteredStaleAndUnsignedListingsAreRefused() throws {
        var forged = EnvelopeBuilder(payload: Self.listing())
        forged.signature = try TestKeys.other2048.signBase64(forged.signedText)
        guard case .untrusted(.badSignature, _) = try Self.verify(forged) else {
            Issue.record("forged")
            return
        }

        var altered = EnvelopeBuilder(payload: Self.listing())
        altered.response = Self.listing(keys: [("k-1", "mallory@x"), ("k-2", "o@x")])
        guard case .untrusted(.payloadMismatch, _) = try Self.verify(altered) else {
            Issue.record("altered")
            return
        }

        let stale = EnvelopeBuilder(payload: Self.listing(timestamp: Int(Timestamps.now()) - 3600))
        guard case .untrusted(.stale, _) = try Self.verify(stale) else {
            Issue.record("stale")
            return
        }
        guard case .trusted = try Self.verify(stale, maxAge: nil) else {
            Issue.record("audit ignores age")
            return
        }

        var unsigned = EnvelopeBuilder(payload: Self.listing())
        unsigned.signature = ReplyVerifier.unsignedMarker
        guard case .untrusted(.unsigned, _) = try Self.verify(unsigned) else {
            Issue.record("unsigned")
            return
        }

        var duplicate = EnvelopeBuilder(payload: Self.listing())
        duplicate.payload = duplicate.payload.replacingOccurrences(
            of: #""license_key":"k-1","#, with: #""license_key":"k-1","license_key":"k-9","#)
        // The unsigned `response` copy holds the duplicate too, and the envelope is refused as not
        // JSON before its payload is read: as ReplyVerifier refuses such a reply (SignatureDifferentialTests).
        guard case .untrusted(.envelopeNotJSON, _) = try Self.verify(duplicate) else {
            Issue.record("duplicate member")
            return
        }
    }

    @Test func mutatedListingsNeverCrashOrVerify() throws {
        let original = Array(try EnvelopeBuilder(payload: Self.listing()).json().utf8)
        let verifier = ListingVerifier(keyRing: try TestKeys.ring())
        var generator = SeededGenerator(state: 12)
        for _ in 0..<3000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let at = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[at] ^= UInt8(1 << Int.random(in: 0..<8, using: &generator))
                case 1: bytes.remove(at: at)
                default: bytes.insert(UInt8.random(in: 0...255, using: &generator), at: at)
                }
            }
            if case .trusted(let listing) = verifier.verify(OwnedBytes(copying: bytes), maxAge: nil) {
                // Only a change outside the signed text and its meaning may still verify.
                #expect(listing.index.count == 2)
                #expect(listing.index.entry(forKey: "k-2")?.ownerEmail == "o@x")
            }
        }
    }
}
