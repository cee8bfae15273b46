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

    @Option(name: .long, help: "The work database (default: $KEYASSIGN_DB, else ./keyassign.sqlite).")
    var db: String?

    @Option(name: .long, help: ArgumentHelp("Take FIELD from the column named COLUMN (repeatable). Fields: \(ImportField.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "FIELD=COLUMN"))
    var map: [String] = []

    @Option(name: .long, help: "auto, ',', ';', tab or '|' (default: auto, from the header line).")
    var delimiter: String = "auto"

    @Flag(name: .long, help: "Parse, validate and print the summary, but write nothing.")
    var dryRun = false

    @Argument(help: ArgumentHelp("CSV files or directories.", valueName: "FILE_OR_DIR"))
    var paths: [String]

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one CSV file or directory") }
        _ = try columnMap()
        _ = try parsedDelimiter()
    }

    func columnMap() throws -> [ImportField: String] {
        var result: [ImportField: String] = [:]
        for entry in map {
            guard let equals = entry.firstIndex(of: "=") else {
                throw ValidationError("--map \(entry): expected FIELD=COLUMN")
            }
            let name = String(entry[..<equals])
            let column = String(entry[entry.index(after: equals)...])
            guard let field = ImportField(rawValue: name) else {
                throw ValidationError("--map \(entry): unknown field '\(name)'; fields: \(ImportField.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard !column.isEmpty else { throw ValidationError("--map \(entry): empty column name") }
            result[field] = column
        }
        return result
    }

    func parsedDelimiter() throws -> CSVDelimiter? {
        if delimiter == "auto" { return nil }
        guard let parsed = CSVDelimiter(argument: delimiter) else {
            throw ValidationError("--delimiter \(delimiter): use auto, ',', ';', tab or '|'")
        }
        return parsed
    }

    func run() throws {
        let options = ImportOptions(databasePath: Database.resolvePath(db), columnMap: try columnMap(),
                                    delimiter: try parsedDelimiter(), dryRun: dryRun)
        let outcome = importFiles(paths, options: options,
                                  output: { StandardStreams.out($0 + "\n") },
                                  errorOutput: { StandardStreams.error($0) })
        if outcome.exitStatus != .ok { throw ExitCode(outcome.exitStatus.rawValue) }
    }
}

/// Writes to the standard streams with write(2): the C `stdout`/`stderr` globals are not
/// usable under strict concurrency, and print() buffers (fine for stdout only).
enum StandardStreams {
    static func error(_ message: String) {
        write(to: 2, "keyassign: " + message + "\n")
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
