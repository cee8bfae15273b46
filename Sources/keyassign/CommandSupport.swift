import ArgumentParser
import KeyAssign

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `--db`, shared by every command that uses the work database.
struct DatabaseOption: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp("The work database (default: $KEYASSIGN_DB, else ./keyassign.sqlite).", valueName: "PATH"))
    var db: String?

    @Flag(
        name: .long,
        help: ArgumentHelp(
            "Use a database that is not the user's own alone: reached through a symlink, in a directory others can write, or whose files another user owns or may write (refused otherwise, exit 77). The lock still keeps one writer per database file."
        ))
    var allowSharedDb = false

    var path: String { Database.resolvePath(db) }

    /// Parsing sets the trust rule before the command opens any database.
    func validate() throws {
        DatabaseFileTrust.allowShared(allowSharedDb)
    }
}

/// Runs a command's body and ends the process the way scripts rely on: library errors
/// become their exit status with one message on stderr, and a non-zero result status is
/// the process's exit status.
func exitingWithStatus(_ body: () throws -> ExitStatus) throws {
    let status: ExitStatus
    do {
        status = try body()
    } catch let error as any ExitStatusError {
        // Which status an error means is decided in one place, `ExitStatus(for:)` (each
        // ExitStatusError says its own). Errors become exits here for most commands; a few
        // catch them earlier, and still ask `ExitStatus(for:)` or `KeyAssignError.status`:
        // `RunSetup.executeWithSummary`, `SyncCommand.importAndRun` and `RunCommand` (the
        // status goes to the runs row and --metrics-file before the process exits),
        // `ImportJob.stopped` (the files done so far are summed up first), and
        // `VerifyCommand`/`SandboxCommand` (their messages name the command).
        StandardStreams.error(error.description)
        throw ExitCode(ExitStatus(for: error).rawValue)
    }
    if status != .ok { throw ExitCode(status.rawValue) }
}

/// Writes to the standard streams with write(2): the C `stdout`/`stderr` globals are not
/// usable under strict concurrency, and print() buffers (fine for stdout only).
enum StandardStreams {
    static func error(_ message: String) {
        // Messages quote file names and servers: escaped, one line (`TerminalText`).
        write(to: 2, "keyassign: " + TerminalText.escape(message) + "\n")
    }

    static func out(_ text: String) {
        write(to: 1, text)
    }

    private static func write(to fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { raw in
                #if canImport(Glibc)
                    Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                #else
                    Darwin.write(fd, raw.baseAddress! + offset, raw.count - offset)
                #endif
            }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }
}

/// Checks a numeric flag against its documented range (`FlagRange`) while the arguments are
/// parsed, so that a bad value stops the command (exit 64) before it takes a lock, opens a
/// database or reads a file.
func checkFlag(_ range: FlagRange, _ value: Double?) throws {
    if let value, let problem = range.problem(value) { throw ValidationError(problem) }
}

func checkFlag(_ range: FlagRange, _ value: Int?) throws {
    try checkFlag(range, value.map(Double.init))
}
