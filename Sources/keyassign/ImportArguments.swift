import ArgumentParser
import KeyAssign

/// How to read the CSV files: shared by `import` and `sync`.
struct ImportArguments: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Take FIELD from the column named COLUMN (repeatable). Fields: \(ImportField.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "FIELD=COLUMN"))
    var map: [String] = []

    @Option(name: .long, help: "The field delimiter.")
    var delimiter: DelimiterChoice = .auto

    func validate() throws {
        _ = try columnMap()
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
