/// `keyassign audit`: re-verifies every stored reply offline and checks that each row's
/// recorded state is backed by one.
///
/// The rule: an `assigned` row needs a stored reply that verifies as 800; a `rejected` or
/// `uncertain` row one that verifies as 801. Separately, a stored reply that was trusted
/// when it arrived but no longer verifies means the database was edited (or the wrong key
/// is configured): that is reported too. Freshness is not checked: stored replies are old.
public enum Audit {
    public struct Discrepancy: Sendable, Equatable, CustomStringConvertible {
        public var licenseKey: String
        public var message: String
        public var description: String { "\(licenseKey): \(message)" }
    }

    public struct Result: Sendable {
        public var rowsChecked = 0
        public var repliesChecked = 0
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
        case .rejected, .uncertain: 801
        case .pending, .inFlight, .retry, .failed: nil
        }
    }

    public static func run(_ db: Database, verifier: ReplyVerifier, report: (Discrepancy) -> Void) throws -> Result {
        var result = Result()
        var verifiedCounts: [String: Int] = [:]
        // A merge join over both tables in work-id order: memory stays flat however large
        // the table.
        let rows = try db.prepare("SELECT id, license_key, state FROM work ORDER BY id")
        let replies = try db.prepare("""
            SELECT work_id, id, code, verdict, reply, signing_key_sha256, signing_key_file
            FROM attempts WHERE reply IS NOT NULL ORDER BY work_id, id
            """)
        var replyPending = try replies.step()

        func note(_ key: String, _ message: String) {
            let discrepancy = Discrepancy(licenseKey: key, message: message)
            result.discrepancies += 1
            report(discrepancy)
        }

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
                    switch verifier.verify(replies.blob(4) ?? [], maxAge: nil) {
                    case .trusted(let payload):
                        verifiedCodes.insert(payload.code)
                        if let signer = payload.signingKey {
                            verifiedCounts["\(signer.name) \(signer.sha256)", default: 0] += 1
                            if wasTrusted, let recorded = replies.string(5), recorded != signer.sha256 {
                                note(key, "attempt \(attemptID) is recorded as verified by key \(recordedKey ?? recorded), but verifies under \(signer)")
                            }
                        }
                        if wasTrusted, let recordedCode, recordedCode != payload.code {
                            note(key, "attempt \(attemptID) is recorded with code \(recordedCode) but its signed reply says \(payload.code)")
                        }
                    case .untrusted(let reason, let detail):
                        if wasTrusted {
                            let hint = recordedKey.map { "; key \($0) verified it when it arrived: is that key among --public-key?" } ?? ""
                            note(key, "attempt \(attemptID): the stored reply no longer verifies (\(reason.rawValue): \(detail))\(hint)")
                        }
                    }
                }
                replyPending = try replies.step()
            }
            result.rowsChecked += 1
            guard let state else {
                note(key, "unknown state '\(rows.string(2) ?? "")'")
                continue
            }
            if let needed = requiredCode(for: state), !verifiedCodes.contains(needed) {
                note(key, "recorded as \(state.rawValue), but no stored reply verifies as \(needed)")
            }
        }
        result.verifiedByKey = verifier.keyRing.signingKeys.map { key in
            (key, verifiedCounts["\(key.name) \(key.sha256)"] ?? 0)
        }
        return result
    }
}
