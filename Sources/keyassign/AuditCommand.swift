import ArgumentParser
import Foundation
import KeyAssign

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Re-verify every stored signed reply offline and check each row's state is backed by one.",
        discussion: """
            An assigned row needs a stored reply that verifies as 800; a rejected or uncertain \
            row one that verifies as 801, or a settlement from a stored key listing that \
            re-verifies, quotes the listing's own entry for the key, and leads to that state \
            by the reconcile rules. A row whose last change was a settlement must still be in \
            the settlement's state. A stored reply that was trusted when it arrived but \
            no longer verifies is reported too (e.g. after the database was edited by hand). \
            Timestamps are not checked: stored replies are old. Several keys may share a \
            name; a reply recorded as verified by one key (its SHA-256 fingerprint) that \
            now verifies under another is reported too. A row settled by a listing that \
            `keyassign prune` removed is said ("evidence pruned on …"), not failed.

            One line per discrepancy on stdout, then a summary on stderr. Exit status 0 when \
            all is consistent, 1 otherwise, 78 for an unusable public key.
            """
    )

    @OptionGroup var database: DatabaseOption

    @Option(
        name: .customLong("public-key"),
        help: ArgumentHelp(
            "A public key PEM the replies may be signed with (repeatable; a bare PATH is named global; several may share a NAME).",
            valueName: "[NAME=]PATH"))
    var publicKeys: [String] = []

    @Option(
        name: .customLong("export-listing"),
        help: ArgumentHelp(
            "Write the signed payload of kept key listing N to stdout, byte for byte, and audit nothing (to verify it by hand: docs/signatures.md).",
            valueName: "N"))
    var exportListing: Int64?

    @Option(
        name: .customLong("export-reply"),
        help: ArgumentHelp(
            "Write the stored reply of attempt N to stdout as an envelope (kept whole, or rebuilt from its signed payload and signature), for keyassign verify, and audit nothing.",
            valueName: "N"))
    var exportReply: Int64?

    func validate() throws {
        if publicKeys.isEmpty && exportListing == nil && exportReply == nil {
            throw ValidationError("give at least one --public-key [NAME=]PATH")
        }
    }

    func run() throws {
        if let exportListing {
            return try exitingWithStatus {
                let db = try Database(path: database.path, create: false)
                let payload = try KeptListing.signedPayload(db, listing: exportListing)
                FileHandle.standardOutput.write(Data(payload.buffer))
                return .ok
            }
        }
        if let exportReply {
            return try exitingWithStatus {
                let db = try Database(path: database.path, create: false)
                FileHandle.standardOutput.write(Data(try StoredReply.envelope(db, attempt: exportReply)))
                return .ok
            }
        }
        try exitingWithStatus {
            let verifier = ReplyVerifier(keyRing: try KeyRing(specs: publicKeys))
            let db = try Database(path: database.path, create: false)
            let result = try Audit.run(
                db, verifier: verifier, report: { StandardStreams.out($0.description + "\n") },
                notice: { StandardStreams.out($0.description + "\n") })
            StandardStreams.error(
                "audit: \(result.rowsChecked) rows, \(result.repliesChecked) stored replies, "
                    + "\(result.listingsChecked) key listings and \(result.settlementsChecked) settlements checked, "
                    + "\(result.discrepancies) discrepanc\(result.discrepancies == 1 ? "y" : "ies")"
                    + (result.evidencePruned > 0
                        ? "; \(result.evidencePruned) row(s) settled by evidence pruned on purpose (keyassign prune)"
                        : ""))
            for (key, replies) in result.verifiedByKey {
                StandardStreams.error("audit: \(replies) stored repl\(replies == 1 ? "y" : "ies") verified by \(key)")
            }
            return result.discrepancies == 0 ? .ok : .someFailed
        }
    }
}
