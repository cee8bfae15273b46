import ArgumentParser
import KeyAssign

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a report as CSV on standard output.",
        discussion: "--invalid: the input rows that could not be queued (source_file, source_line, reason, license_key, owner_name, email, raw)."
    )

    @Option(name: .long, help: "The work database (default: $KEYASSIGN_DB, else ./keyassign.sqlite).")
    var db: String?

    @Flag(name: .long, help: "The invalid input rows, with the reason for each.")
    var invalid = false

    func validate() throws {
        if !invalid { throw ValidationError("say which report: --invalid") }
    }

    func run() throws {
        do {
            let database = try Database(path: Database.resolvePath(db), create: false)
            try InvalidRowsReport.write(from: database) { StandardStreams.out($0) }
        } catch let error as KeyAssignError {
            StandardStreams.error(error.message)
            throw ExitCode(error.status.rawValue)
        } catch let error as DatabaseError {
            StandardStreams.error(error.description)
            throw ExitCode(ExitStatus.ioError.rawValue)
        }
    }
}
