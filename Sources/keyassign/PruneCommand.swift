import ArgumentParser
import KeyAssign

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Drop key listings kept as evidence longer than --keep-evidence days, and shrink the file.",
        discussion: """
            Each pruned listing keeps its row: when it was pruned and the SHA-256 of the
            signed payload it was (`listings.pruned_at`, `listings.payload_sha256`), so an
            archived copy can still be matched to it. `audit` then says "evidence pruned on …"
            for the rows it settled, instead of failing. Entries no kept listing uses are
            deleted and the freed pages given back to the file system (incremental vacuum).
            A database created before this version is rewritten once, by VACUUM, on its first
            prune: that needs as much free disk as the file. Run it after the nightly job,
            e.g. `keyassign prune --keep-evidence 90`. While a run holds the database, prune
            exits 75 and changes nothing.
            """
    )

    @OptionGroup var database: DatabaseOption

    @Option(
        name: .customLong("keep-evidence"),
        help: ArgumentHelp(
            "Keep the key listings fetched in the last DAYS days (\(FlagRange.keepEvidence.text)).", valueName: "DAYS"))
    var keepEvidence: Double

    func validate() throws {
        try checkFlag(.keepEvidence, keepEvidence)
    }

    func run() throws {
        try exitingWithStatus {
            // Not beside a run: it may be storing a listing that copies from one pruned here.
            let lock = try DatabaseLock.acquire(databasePath: database.path, command: "prune")
            defer { lock?.release() }
            let result = try EvidenceRetention.prune(databasePath: database.path, keepDays: keepEvidence)
            StandardStreams.out(
                "pruned \(result.listingsPruned) key listing(s) fetched more than \(keepEvidence.rounded() == keepEvidence ? String(Int(keepEvidence)) : String(keepEvidence)) day(s) ago"
                    + " (\(result.entriesDeleted) entries no kept listing uses deleted, \(result.listingsRewritten) kept listing(s) rewritten standalone)"
                    + "; database \(result.fileBytesBefore) -> \(result.fileBytesAfter) bytes"
                    + (result.convertedToIncrementalVacuum ? " (converted to incremental vacuum by one VACUUM)" : "")
                    + "\n")
            return .ok
        }
    }
}
