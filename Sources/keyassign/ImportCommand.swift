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
            A directory means its *.csv files in name order. A file already imported (same \
            SHA-256) is skipped. Each file is imported in one transaction: all of it or nothing.
            Exit status: 0 every file read (invalid rows are recorded, see `report --invalid`); \
            65 a file could not be read or has no license-key column; 64 usage error.
            """
    )

    @OptionGroup var database: DatabaseOption

    @OptionGroup var columns: ImportArguments

    @Flag(name: .long, help: "Parse, validate and print the summary, but write nothing.")
    var dryRun = false

    @Argument(help: ArgumentHelp("CSV files or directories.", valueName: "FILE_OR_DIR"))
    var paths: [String]

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one CSV file or directory") }
    }

    func run() throws {
        let options = ImportOptions(databasePath: database.path, columnMap: try columns.columnMap(),
                                    delimiter: columns.delimiter.csvDelimiter, dryRun: dryRun)
        let outcome = importFiles(paths, options: options,
                                  output: { StandardStreams.out($0 + "\n") },
                                  errorOutput: { StandardStreams.error($0) })
        if outcome.exitStatus != .ok { throw ExitCode(outcome.exitStatus.rawValue) }
    }
}
