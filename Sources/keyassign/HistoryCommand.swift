import ArgumentParser
import KeyAssign

struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Every attempt for one license key: did this customer get their key?",
        discussion:
            "The key is matched as typed, else ignoring case and surrounding spaces. Input rows the import refused are shown too, with the reason. Exit status 0 when the key is known (queued or refused), 1 when no imported row has it."
    )

    @OptionGroup var database: DatabaseOption

    @Argument(help: ArgumentHelp("The license key.", valueName: "KEY"))
    var key: String

    func run() throws {
        try exitingWithStatus {
            let db = try Database(path: database.path, create: false)
            let found = try History.find(key: key, in: db)
            if found.isEmpty {
                StandardStreams.error(
                    "no imported row has license key \(key), queued or refused (matched ignoring case and surrounding spaces)"
                )
                return .someFailed
            }
            StandardStreams.out(History.render(found))
            return .ok
        }
    }
}
