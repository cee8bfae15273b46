import ArgumentParser
import KeyAssign

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Queue the rows of sales-system CSV exports in the work database.",
        discussion: """
            A directory means its *.csv files in name order, each read once it has not changed \
            for --settle seconds (or once its --ready-marker exists); a file still changing is \
            left for the next run, and said so. Names upload tools use while a file is in \
            transfer (dotfiles, *.part, *.tmp, *.filepart, *.crdownload) are skipped, and \
            anything that is not a regular file (a FIFO, a socket) is skipped with a warning. \
            Files named one by one are taken as ready. A file already imported (same SHA-256) \
            is skipped; one whose path, size, modification time and inode are those it was \
            imported with is not even read. The summary lists the new files, and one line \
            for those skipped. Each file is imported in one transaction: all of it or nothing.

            Encodings: a byte-order mark (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE) is honoured; \
            otherwise --encoding, else UTF-8. A file that is not valid UTF-8 and has no BOM \
            and no --encoding is refused whole (exit 65), with the encoding it looks like and \
            the flag to give. Everything is stored as UTF-8.

            Limits: a record (a row with its quoted line breaks) of at most 1 MiB; a license \
            key of at most 256 bytes, an owner name of 255 characters, an email of 254 bytes. \
            A row over a limit is recorded as invalid with the limit named; the rest of the \
            file imports.

            An import never writes beside a run: while `run`, `sync`, `retry` or another \
            import holds the database, it waits up to --wait seconds (default 0), then \
            exits 75 having imported nothing; run it again later (files already imported \
            are skipped).

            Exit status: 0 every file read (invalid rows are recorded, see `report --invalid`); \
            65 a file could not be read, is not UTF-8 (see above) or has no license-key column; \
            74 the database failed; 75 another keyassign process holds the database; 64 usage error.
            """
    )

    @OptionGroup var database: DatabaseOption

    @OptionGroup var columns: ImportArguments

    @Flag(name: .long, help: "Parse, validate and print the summary, but write nothing.")
    var dryRun = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Wait up to SECONDS for a run holding the database to end, then exit 75 (\(FlagRange.lockWait.text)).",
            valueName: "SECONDS"))
    var wait: Double = 0

    @Argument(help: ArgumentHelp("CSV files or directories.", valueName: "FILE_OR_DIR"))
    var paths: [String]

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one CSV file or directory") }
        try checkFlag(.lockWait, wait)
    }

    func run() throws {
        var options = try columns.importOptions(databasePath: database.path, dryRun: dryRun)
        options.lockWait = wait
        let outcome = ImportJob.run(
            paths, options: options,
            output: { StandardStreams.out(TerminalText.escape($0) + "\n") },
            errorOutput: { StandardStreams.error($0) })
        if outcome.exitStatus != .ok { throw ExitCode(outcome.exitStatus.rawValue) }
    }
}
