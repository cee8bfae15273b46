import ArgumentParser
import KeyAssign

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "One line per row, as CSV or JSONL; or the split files sales ops work from.",
        discussion: """
            Fields (the CSV header and the JSONL keys alike): license_key, owner_name, email, \
            state, code (null when none), attempts, last_error, source_file, source_line, \
            updated_at (ISO 8601 UTC).

            --split DIR writes DIR/success.csv (assigned rows) and DIR/errors.csv (rejected, \
            uncertain and failed rows, and invalid input rows, each with a reason in plain \
            words, its source file:line and its original fields).

            --invalid writes the input rows that could not be queued.

            --html FILE writes one self-contained page (mode 0600) for sales ops and managers: \
            a chart of outcomes per run for the last 30 runs, a table per source file, the rows \
            that need a person with why and the command to run next, and the refused keys.

            CSV is meant for spreadsheets: it starts with a UTF-8 byte-order mark, so that Excel reads names such as Jürgen Müller right when the file is opened by double-click; a field starting with =, +, -, @, tab or CR gets a leading ' so that a spreadsheet cannot run it as a formula. --delimiter semicolon writes what Excel expects in German, French and other locales. --raw writes CSV for programs instead: no byte-order mark and no leading ', the values byte for byte. The --split files are for spreadsheets and always start with the byte-order mark.
            """
    )

    @OptionGroup var database: DatabaseOption

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Only rows in this state (repeatable): pending, in_flight, retry, assigned, rejected, uncertain, failed.",
            valueName: "S"))
    var state: [String] = []

    @Flag(name: .long, help: "The invalid input rows instead, with the reason for each (CSV).")
    var invalid = false

    @Option(name: .long, help: ArgumentHelp("csv or jsonl.", valueName: "FORMAT"))
    var format: String = "csv"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Write to this file (replaced whole when complete) instead of standard output.", valueName: "FILE"))
    var output: String?

    @Option(name: .long, help: ArgumentHelp("Write success.csv and errors.csv into this directory.", valueName: "DIR"))
    var split: String?

    @Option(
        name: .long, help: ArgumentHelp("Write the night at a glance as one HTML page to this file.", valueName: "FILE")
    )
    var html: String?

    @Flag(
        name: .long, help: "CSV for programs: no byte-order mark, and spreadsheet formulas in fields not neutralised.")
    var raw = false

    @Option(name: .long, help: "The CSV field separator.")
    var delimiter: ReportDelimiterChoice = .comma

    func validate() throws {
        if ReportFormat(rawValue: format) == nil {
            throw ValidationError("--format must be csv or jsonl, not '\(format)'")
        }
        for name in state where WorkState(rawValue: name) == nil {
            throw ValidationError(
                "unknown state '\(name)'; states are "
                    + WorkState.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if split != nil && (invalid || output != nil || !state.isEmpty || format != "csv") {
            throw ValidationError(
                "--split writes its own CSV files; it does not combine with --invalid, --state, --output or --format")
        }
        if html != nil
            && (split != nil || invalid || output != nil || !state.isEmpty || format != "csv" || raw
                || delimiter != .comma)
        {
            throw ValidationError(
                "--html writes its own page; it does not combine with --split, --invalid, --output, --state, --format, --raw or --delimiter"
            )
        }
        if format == "jsonl" && delimiter != .comma {
            throw ValidationError("--delimiter is for CSV; it does not combine with --format jsonl")
        }
        if invalid && (!state.isEmpty || format != "csv") {
            throw ValidationError(
                "--invalid is CSV of the invalid input rows; it does not combine with --state or --format")
        }
    }

    func run() throws {
        try exitingWithStatus {
            let db = try Database(path: database.path, create: false)
            if let html {
                try HTMLReport.write(from: db, to: html)
                StandardStreams.error("wrote \(html)")
                return .ok
            }
            if let split {
                let counts = try SplitReport.write(from: db, to: split, raw: raw, delimiter: delimiter.csvDelimiter)
                StandardStreams.error(
                    "wrote \(split)/success.csv (\(counts.success) rows) and \(split)/errors.csv (\(counts.errors) rows)"
                )
                return .ok
            }
            let sink = try output.map(TextOutput.init(path:)) ?? TextOutput()
            if invalid {
                try InvalidRowsReport.write(
                    from: db, raw: raw, delimiter: delimiter.csvDelimiter,
                    byteOrderMark: !raw
                ) { sink.write($0) }
            } else {
                try RowReport.write(
                    from: db, states: state.compactMap(WorkState.init(rawValue:)),
                    format: ReportFormat(rawValue: format) ?? .csv, raw: raw,
                    delimiter: delimiter.csvDelimiter, byteOrderMark: !raw, to: sink)
            }
            try sink.finish()
            return .ok
        }
    }
}
