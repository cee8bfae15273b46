import ArgumentParser
import KeyAssign

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show how many rows are in each state, invalid rows and imports."
    )

    @Option(name: .long, help: "The work database (default: $KEYASSIGN_DB, else ./keyassign.sqlite).")
    var db: String?

    func run() throws {
        do {
            let database = try Database(path: Database.resolvePath(db), create: false)
            print(try StatusReport.load(from: database).render())
        } catch let error as KeyAssignError {
            StandardStreams.error(error.message)
            throw ExitCode(error.status.rawValue)
        } catch let error as DatabaseError {
            StandardStreams.error(error.description)
            throw ExitCode(ExitStatus.ioError.rawValue)
        }
    }
}
