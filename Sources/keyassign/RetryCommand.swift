import ArgumentParser
import KeyAssign

struct RetryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Put finished rows back to pending, so that the next run sends them again.",
        discussion: """
            The default selection is --state failed. The attempts counter restarts; the \
            attempts history and the row's Idempotency-Key token stay, and so does the memory \
            that an earlier attempt may have reached the server: a requeued uncertain row whose \
            next answer is 801 is uncertain again, never rejected. \
            While a run (or an import) holds the database, retry exits 75 and changes nothing.
            """
    )

    @OptionGroup var database: DatabaseOption

    @Option(
        name: .long,
        help: ArgumentHelp("Select rows in this state (repeatable): failed, uncertain, rejected.", valueName: "S"))
    var state: [String] = []

    @Option(name: .long, help: ArgumentHelp("Only this license key (repeatable).", valueName: "K"))
    var key: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Only rows imported from this file, however its path is written (relative, ./, absolute). A path that matches no imported file is an error naming the nearest ones.",
            valueName: "FILE"))
    var source: String?

    func validate() throws {
        for name in state where !Requeue.selectableStates.map(\.rawValue).contains(name) {
            throw ValidationError("--state must be one of failed, uncertain, rejected, not '\(name)'")
        }
    }

    func run() throws {
        try exitingWithStatus {
            let db = try Database(path: database.path, create: false)
            // Not beside a run: the rows it requeues could be the ones it is recording.
            let lock = try DatabaseLock.acquire(databasePath: database.path, command: "retry")
            defer { lock?.release() }
            let states = state.compactMap(WorkState.init(rawValue:))
            let sources: [String?] = try source.map { try SourceFileMatch.resolve($0, in: db) } ?? [nil]
            var count = 0
            for sourceFile in sources {
                count += try Requeue.requeue(
                    Requeue.Selection(states: states, keys: key, sourceFile: sourceFile), in: db)
            }
            let selection = Requeue.Selection(states: states)
            StandardStreams.out(
                "requeued \(count) row\(count == 1 ? "" : "s") ("
                    + selection.states.map(\.rawValue).joined(separator: ", ") + ")\n")
            return .ok
        }
    }
}
