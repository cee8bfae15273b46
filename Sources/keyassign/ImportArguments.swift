import ArgumentParser
import KeyAssign

/// How to read the CSV files: shared by `import` and `sync`.
struct ImportArguments: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Take FIELD from the column named COLUMN (repeatable). Fields: \(ImportField.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "FIELD=COLUMN"))
    var map: [String] = []

    @Option(name: .long, help: "The field delimiter.")
    var delimiter: DelimiterChoice = .auto

    @Option(name: .long, help: ArgumentHelp("The files' text encoding when they have no byte-order mark (a BOM always wins). Default: UTF-8, and a file that is not UTF-8 is refused with the encoding it looks like.", valueName: "ENCODING"))
    var encoding: InputEncoding?

    @Option(name: .long, help: ArgumentHelp("In a directory, read a file only once it has not changed for this many seconds (\(FlagRange.settle.text); 0 = at once). Files named one by one are taken as ready.", valueName: "SECONDS"))
    var settle: Double = 60

    @Option(name: .customLong("ready-marker"), help: ArgumentHelp("In a directory, read NAME.csv only once NAME.csv<SUFFIX> exists (e.g. .done), instead of waiting for it to settle.", valueName: "SUFFIX"))
    var readyMarker: String?

    func validate() throws {
        _ = try columnMap()
        try checkFlag(.settle, settle)
        if let readyMarker, readyMarker.isEmpty || readyMarker.contains("/") {
            throw ValidationError("--ready-marker '\(readyMarker)': give a non-empty suffix without '/', such as .done")
        }
    }

    /// The import options these arguments give, for `database`.
    func importOptions(databasePath: String, dryRun: Bool) throws -> ImportOptions {
        var options = ImportOptions(databasePath: databasePath, columnMap: try columnMap(),
                                    delimiter: delimiter.csvDelimiter, dryRun: dryRun)
        options.encoding = encoding
        options.settle = settle
        options.readyMarker = readyMarker
        return options
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
}

extension InputEncoding: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
}
