import ArgumentParser
import KeyAssign

struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Every attempt for one license key: did this customer get their key?",
        discussion: "Exit status 0 when the key is known, 1 when no imported row has it."
    )

    @OptionGroup var database: DatabaseOption

    @Argument(help: ArgumentHelp("The license key.", valueName: "KEY"))
    var key: String

    func run() throws {
        try exitingWithStatus {
            let db = try Database(path: database.path, create: false)
            guard let entry = try History.lookup(key: key, in: db) else {
                StandardStreams.error("no imported row has license key \(key)")
                return .someFailed
            }
            StandardStreams.out(History.render(entry))
            return .ok
        }
    }
}
