import ArgumentParser
import KeyAssign

/// How to read the CSV files: shared by `import` and `sync`.
struct ImportArguments: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Take FIELD from the column named COLUMN (repeatable). Fields: \(ImportField.allCases.map(\.rawValue).joined(separator: ", ")). A file without that column is mapped by recognition instead.",
            valueName: "FIELD=COLUMN"))
    var map: [String] = []

    @Option(
        name: .customLong("map-file"),
        help: ArgumentHelp(
            "Mappings chosen by file-name pattern: [PATTERN] lines, each followed by FIELD = COLUMN lines (or allow_missing = FIELD). The first pattern that matches a file's name applies; see the README.",
            valueName: "PATH"))
    var mapFile: String?

    @Option(
        name: .customLong("allow-missing"),
        help: ArgumentHelp(
            "Import files that have no column for FIELD (owner_name or email; repeatable): the keys are assigned with it empty. Without it such a file is refused (exit 65).",
            valueName: "FIELD"))
    var allowMissing: [String] = []

    @Option(name: .long, help: "The field delimiter.")
    var delimiter: DelimiterChoice = .auto

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The files' text encoding when they have no byte-order mark (a BOM always wins). Default: UTF-8, and a file that is not UTF-8 is refused with the encoding it looks like.",
            valueName: "ENCODING"))
    var encoding: InputEncoding?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "In a directory, read a file only once it has not changed for this many seconds (\(FlagRange.settle.text); 0 = at once). Files named one by one are taken as ready.",
            valueName: "SECONDS"))
    var settle: Double = 60

    @Option(
        name: .customLong("ready-marker"),
        help: ArgumentHelp(
            "In a directory, read NAME.csv only once NAME.csv<SUFFIX> exists (e.g. .done), instead of waiting for it to settle.",
            valueName: "SUFFIX"))
    var readyMarker: String?

    func validate() throws {
        _ = try columnMap()
        _ = try allowedMissing()
        if let mapFile {
            do {
                _ = try ColumnMapFile.load(mapFile)
            } catch let error as KeyAssignError {
                throw ValidationError(error.description)
            }
        }
        try checkFlag(.settle, settle)
        if let readyMarker, readyMarker.isEmpty || readyMarker.contains("/") {
            throw ValidationError("--ready-marker '\(readyMarker)': give a non-empty suffix without '/', such as .done")
        }
    }

    /// The import options these arguments give, for `database`.
    func importOptions(databasePath: String, dryRun: Bool) throws -> ImportOptions {
        var options = ImportOptions(
            databasePath: databasePath, columnMap: try columnMap(),
            delimiter: delimiter.csvDelimiter, dryRun: dryRun)
        options.encoding = encoding
        options.allowMissing = try allowedMissing()
        options.mapFile = try mapFile.map(ColumnMapFile.load)
        options.settle = settle
        options.readyMarker = readyMarker
        return options
    }

    func allowedMissing() throws -> Set<ImportField> {
        Set(
            try allowMissing.map { name in
                guard let field = ImportField(rawValue: name), field == .ownerName || field == .email else {
                    throw ValidationError("--allow-missing \(name): give owner_name or email")
                }
                return field
            })
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
                throw ValidationError(
                    "--map \(entry): unknown field '\(name)'; fields: \(ImportField.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            guard !column.isEmpty else { throw ValidationError("--map \(entry): empty column name") }
            result[field] = column
        }
        return result
    }
}

extension InputEncoding: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
}
