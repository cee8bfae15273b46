/// `keyassign audit`: re-verifies every stored reply offline and checks that each row's
/// recorded state is backed by one.
///
/// The rule: an `assigned` row needs a stored reply that verifies as 800; a `rejected` or
/// `uncertain` row one that verifies as 801 — or, for a row settled from the server's key
/// listing, a settlement whose stored listing re-verifies, whose entry is the one in that
/// listing, and whose state follows from that entry by the reconcile rules. A row whose last
/// change was a settlement must still be in the settlement's state. Separately, a stored reply that was trusted
/// when it arrived but no longer verifies means the database was edited (or the wrong key
/// is configured): that is reported too. Freshness is not checked: stored replies are old.
public enum Audit {
    public struct Discrepancy: Sendable, Equatable, CustomStringConvertible {
        public var licenseKey: String
        public var message: String
        /// One line: the key and the message may quote stored text (a server's, a listing's).
        public var description: String { TerminalText.escape("\(licenseKey): \(message)") }
    }

    public struct Result: Sendable {
        public var rowsChecked = 0
        public var repliesChecked = 0
        public var listingsChecked = 0
        public var settlementsChecked = 0
        /// Rows whose settlement's listing was pruned (`keyassign prune`): said, not failed.
        public var evidencePruned = 0
        /// Counted, not kept: each one goes to `report` as it is found (with the wrong key
        /// configured, every row is one).
        public var discrepancies = 0
        /// How many stored replies each configured key verifies, in the ring's order; keys
        /// that verify none are listed too, so a key given for nothing shows.
        public var verifiedByKey: [(key: SigningKey, replies: Int)] = []
    }

    /// The signed code a row's state must be backed by, if any.
    static func requiredCode(for state: WorkState) -> Int? {
        switch state {
        case .assigned: 800
        case .rejected: 801
        // Uncertain claims nothing: attempts that ran out after maybe reaching the server end
        // there without any 801 (docs/states.md).
        case .uncertain: nil
        case .pending, .inFlight, .retry, .failed: nil
        }
    }

    /// `notice` hears the rows whose evidence was pruned on purpose ("evidence pruned on …").
    public static func run(
        _ db: Database, verifier: ReplyVerifier, report: (Discrepancy) -> Void,
        notice: (Discrepancy) -> Void = { _ in }
    ) throws -> Result {
        var result = Result()
        var verifiedCounts: [String: Int] = [:]
        func note(_ key: String, _ message: String) {
            let discrepancy = Discrepancy(licenseKey: key, message: message)
            result.discrepancies += 1
            report(discrepancy)
        }
        // First every stored listing, one at a time (memory: one listing), and the entries
        // the settlements quote from it; the merge join below then only needs the verdicts.
        let evidence = try checkListings(db, verifier: ListingVerifier(keyRing: verifier.keyRing), note: note)
        result.listingsChecked = evidence.listingsChecked

        // A merge join over the tables in work-id order: memory stays flat however large
        // the table.
        let rows = try db.prepare("SELECT id, license_key, state, owner_name, email, updated_at FROM work ORDER BY id")
        // A stored reply is an envelope in `reply` (untrusted ones, and every one recorded
        // before migration 8) or a compact signed reply (`signed_reply_id`: payload, signature,
        // and the key that verified it), shared by the attempts that got the same signed bytes.
        let replies = try db.prepare(
            """
            SELECT a.work_id, a.id, a.code, a.verdict, a.reply,
                   coalesce(a.signing_key_sha256, k.sha256), coalesce(a.signing_key_file, k.file),
                   a.signed_reply_id, r.payload, r.signature, k.name
            FROM attempts a LEFT JOIN signed_replies r ON r.id = a.signed_reply_id
                LEFT JOIN signing_keys k ON k.id = r.signing_key_id
            WHERE a.reply IS NOT NULL OR a.signed_reply_id IS NOT NULL ORDER BY a.work_id, a.id
            """)
        // Each signed reply is verified once however many attempts share it (bounded: the
        // attempts sharing one are close together in work-id order).
        var compactVerdicts: [Int64: ReplyVerdict] = [:]
        var replyPending = try replies.step()
        let settlements = try db.prepare(
            """
            SELECT work_id, id, listing_id, entry_index, entry, from_state, to_state, settled_at
            FROM settlements ORDER BY work_id, id
            """)
        var settlementPending = try settlements.step()

        while try rows.step() {
            let workID = rows.int(0)
            let key = rows.string(1) ?? ""
            let state = WorkState(rawValue: rows.string(2) ?? "")
            var verifiedCodes: Set<Int> = []
            while replyPending && replies.int(0) <= workID {
                if replies.int(0) == workID {
                    result.repliesChecked += 1
                    let attemptID = replies.int(1)
                    let recordedCode = replies.isNull(2) ? nil : Int(replies.int(2))
                    let wasTrusted = replies.string(3) == ReplyVerdict.trustedText
                    // The key that verified it when it arrived (migration 3 on; NULL before).
                    let recordedKey = replies.string(5).map { sha in
                        "sha256:\(sha)" + (replies.string(6).map { " (\($0))" } ?? "")
                    }
                    let verdict: ReplyVerdict
                    if replies.isNull(7) {
                        verdict = verifier.verify(replies.blob(4) ?? [], maxAge: nil)
                    } else if let known = compactVerdicts[replies.int(7)] {
                        verdict = known
                    } else {
                        // A missing signed_replies row reads as no bytes: it does not verify.
                        let compact = CompactReply(
                            payload: replies.blob(8) ?? [], signature: replies.blob(9) ?? [],
                            keyName: replies.string(10) ?? "")
                        verdict = compact.verify(with: verifier)
                        if compactVerdicts.count >= SignedReplyStore.remembered { compactVerdicts.removeAll() }
                        compactVerdicts[replies.int(7)] = verdict
                    }
                    switch verdict {
                    case .trusted(let payload):
                        verifiedCodes.insert(payload.code)
                        if let signer = payload.signingKey {
                            verifiedCounts["\(signer.name) \(signer.sha256)", default: 0] += 1
                            if wasTrusted, let recorded = replies.string(5), recorded != signer.sha256 {
                                note(
                                    key,
                                    "attempt \(attemptID) is recorded as verified by key \(recordedKey ?? recorded), but verifies under \(signer)"
                                )
                            }
                        }
                        if wasTrusted, let recordedCode, recordedCode != payload.code {
                            note(
                                key,
                                "attempt \(attemptID) is recorded with code \(recordedCode) but its signed reply says \(payload.code)"
                            )
                        }
                    case .untrusted(let reason, let detail):
                        if wasTrusted {
                            let hint =
                                recordedKey.map {
                                    "; key \($0) verified it when it arrived: is that key among --public-key?"
                                } ?? ""
                            note(
                                key,
                                "attempt \(attemptID): the stored reply no longer verifies (\(reason.rawValue): \(detail))\(hint)"
                            )
                        }
                    }
                }
                replyPending = try replies.step()
            }
            var last: Settlement?
            while settlementPending && settlements.int(0) <= workID {
                if settlements.int(0) == workID {
                    last = Settlement(
                        id: settlements.int(1), listingID: settlements.int(2),
                        entryIndex: settlements.isNull(3) ? nil : Int(settlements.int(3)),
                        entry: settlements.string(4), from: WorkState(rawValue: settlements.string(5) ?? ""),
                        to: WorkState(rawValue: settlements.string(6) ?? ""), settledAt: settlements.string(7) ?? "")
                }
                settlementPending = try settlements.step()
            }
            result.rowsChecked += 1
            guard let state else {
                note(key, "unknown state '\(rows.string(2) ?? "")'")
                continue
            }
            var settledBacking = false
            if let last {
                result.settlementsChecked += 1
                let pruned = evidence.prunedListings[last.listingID]
                let valid =
                    (evidence.verifiedListings.contains(last.listingID) || pruned != nil)
                    && !evidence.badSettlements.contains(last.id)
                let entry = last.entry.flatMap { ListingEntry.parse(storedText: $0, index: last.entryIndex ?? 0) }
                let follows = last.from.flatMap {
                    ReconcileRules.settledState(
                        from: $0, entry: entry, ownerName: rows.string(3), email: rows.string(4))
                }
                if last.settledAt == rows.string(5) {
                    // The settlement is the row's last change: it alone says what the row is.
                    if last.to != state {
                        note(
                            key,
                            "recorded as \(state.rawValue), but its last change was settlement \(last.id) to \(last.to?.rawValue ?? "?") (edited by hand?)"
                        )
                        continue
                    }
                }
                if last.to == state, WorkState.finalStates.contains(state) {
                    if !valid {
                        note(
                            key,
                            "settled as \(state.rawValue) by settlement \(last.id) without evidence: listing \(last.listingID) is missing or does not back it"
                        )
                        continue
                    }
                    if follows != state {
                        note(
                            key,
                            "settled as \(state.rawValue), but its listing entry (\(entry?.summary ?? "not listed")) leads to \(follows?.rawValue ?? "no final state")"
                        )
                        continue
                    }
                    settledBacking = true
                    if let pruned {
                        result.evidencePruned += 1
                        notice(
                            Discrepancy(
                                licenseKey: key,
                                message:
                                    "settled as \(state.rawValue) by settlement \(last.id): evidence pruned on \(pruned.at) (listing \(last.listingID), signed payload sha256 \(pruned.sha256))"
                            ))
                    }
                }
            }
            if let needed = requiredCode(for: state), !verifiedCodes.contains(needed), !settledBacking {
                note(
                    key,
                    "recorded as \(state.rawValue), but no stored reply verifies as \(needed) and no key listing backs it"
                )
            }
        }
        result.verifiedByKey = verifier.keyRing.signingKeys.map { key in
            (key, verifiedCounts["\(key.name) \(key.sha256)"] ?? 0)
        }
        return result
    }

    struct Settlement {
        var id: Int64
        var listingID: Int64
        var entryIndex: Int?
        var entry: String?
        var from: WorkState?
        var to: WorkState?
        var settledAt: String
    }

    struct Evidence {
        var verifiedListings: Set<Int64> = []
        /// Listings pruned on purpose: when, and the SHA-256 of the signed payload they were.
        var prunedListings: [Int64: (at: String, sha256: String)] = [:]
        /// Settlements whose quoted entry is not what their listing says (few: each is reported).
        var badSettlements: Set<Int64> = []
        var listingsChecked = 0
    }

    /// Re-verifies each stored listing (signature and payload; not its age) and checks each
    /// settlement's entry against it: the same text at the same position for the same key, or
    /// the key truly absent.
    static func checkListings(
        _ db: Database, verifier: ListingVerifier,
        note: (String, String) -> Void
    ) throws -> Evidence {
        var evidence = Evidence()
        let ids = try db.prepare("SELECT id FROM listings ORDER BY id")
        var listingIDs: [Int64] = []
        while try ids.step() { listingIDs.append(ids.int(0)) }
        // From migration 7 on a listing is its layout over the kept entries (rebuilt into the
        // signed payload) and signature; from migration 5 its signed payload and signature;
        // before, the whole envelope in `body`. A pruned listing is only its record.
        let stored = try db.prepare(
            """
            SELECT typeof(payload), signature, key_name, typeof(body), layout IS NOT NULL, pruned_at, payload_sha256
            FROM listings WHERE id = ?1
            """)
        var archive = ListingArchive.Reader(db)
        let quoted = try db.prepare(
            """
            SELECT s.id, s.entry_index, s.entry, w.license_key FROM settlements s JOIN work w ON w.id = s.work_id
            WHERE s.listing_id = ?1 ORDER BY s.id
            """)
        for listingID in listingIDs {
            evidence.listingsChecked += 1
            try stored.bind(1, listingID)
            guard try stored.step() else {
                stored.reset()
                continue
            }
            let payloadType = stored.string(0) ?? "null"
            let bodyType = stored.string(3) ?? "null"
            let signature = stored.string(1) ?? ""
            let keyName = stored.string(2) ?? ""
            let hasLayout = stored.int(4) != 0
            if let prunedAt = stored.string(5) {
                evidence.prunedListings[listingID] = (prunedAt, stored.string(6) ?? "?")
                stored.reset()
                continue
            }
            stored.reset()
            // A value edited into a number (or NULL) is read as no bytes: it does not verify.
            func bytes(_ column: String, _ type: String) throws -> OwnedBytes {
                type == "blob" || type == "text"
                    ? try ListingStorage.readBlob(db, table: "listings", column: column, row: listingID)
                    : OwnedBytes(copying: [])
            }
            let verdict: ListingVerdict
            if hasLayout {
                do {
                    verdict = verifier.verifyStored(
                        payload: try archive.payload(listing: listingID), signature: signature, keyName: keyName)
                } catch let malformed as ListingLayout.Malformed {
                    note("listing \(listingID)", "the stored key listing cannot be rebuilt: \(malformed.message)")
                    continue
                }
            } else {
                verdict =
                    payloadType != "null"
                    ? verifier.verifyStored(
                        payload: try bytes("payload", payloadType), signature: signature, keyName: keyName)
                    : verifier.verify(try bytes("body", bodyType), maxAge: nil)
            }
            let index: ListingIndex?
            switch verdict {
            case .trusted(let listing) where listing.code == 730:
                index = listing.index
                evidence.verifiedListings.insert(listingID)
            case .trusted(let listing):
                note("listing \(listingID)", "the stored key listing is signed code \(listing.code), not 730")
                index = nil
            case .untrusted(let reason, let detail):
                note(
                    "listing \(listingID)", "the stored key listing no longer verifies (\(reason.rawValue): \(detail))")
                index = nil
            }
            guard let index else { continue }
            try quoted.bind(1, listingID)
            while try quoted.step() {
                let key = quoted.string(3) ?? ""
                let stored = quoted.string(2)
                let ok: Bool
                if quoted.isNull(1) {
                    ok = stored == nil && index.entry(forKey: key) == nil
                } else {
                    let listed = index.entry(at: Int(quoted.int(1)))
                    ok = listed != nil && listed?.licenseKey == key && listed?.text == stored
                }
                if !ok {
                    evidence.badSettlements.insert(quoted.int(0))
                    note(
                        key,
                        "settlement \(quoted.int(0)) quotes an entry that listing \(listingID) does not hold for this key"
                    )
                }
            }
            quoted.reset()
        }
        return evidence
    }
}
