import ArgumentParser
import KeyAssign

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show how many rows are in each state, invalid rows, imports and the last runs.",
        discussion: """
            Failed rows are split in two: final ones (a verified code under an error status, or a \
            4xx other than 408/429) wait for `keyassign retry`; the others failed for a passing \
            reason and the next run sends them again (JSON: failed_final, failed_passing).
            """
    )

    @OptionGroup var database: DatabaseOption

    @Flag(name: .long, help: "One JSON object instead of aligned text.")
    var json = false

    func run() throws {
        try exitingWithStatus {
            let report = try StatusReport.load(from: Database(path: database.path, create: false))
            StandardStreams.out((json ? report.json() : report.render()) + "\n")
            return .ok
        }
    }
}
