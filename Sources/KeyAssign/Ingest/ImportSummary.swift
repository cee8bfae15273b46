/// The text `import` prints: one line per file (with its first few problems), and the total.
enum ImportSummary {
    static func lines(for result: FileImportResult) -> [String] {
        switch result.status {
        case .failed:
            return ["\(result.path): not imported (see the error message)"]
        case .skipped(let why):
            return ["\(result.path): not imported: \(why)"]
        case .alreadyImported(let previousPath, let importedAt):
            return ["\(result.path): skipped, already imported (same SHA-256 as \(previousPath), imported \(importedAt))"]
        case .imported:
            var lines = ["\(result.path): \(counts(result.rowsRead, result.queued, result.duplicates, result.conflicts, result.invalid))"
                + (result.mappingSummary.isEmpty ? "" : " [\(result.mappingSummary)]")]
            lines += result.problems.map { "  " + $0 }
            let more = result.invalid + result.conflicts - result.problems.count
            if more > 0 { lines.append("  … and \(more) more (keyassign report --invalid)") }
            return lines
        }
    }

    static func totals(_ outcome: ImportOutcome, dryRun: Bool) -> String {
        let files = outcome.files.count
        return "total: \(files) file\(files == 1 ? "" : "s"), "
            + counts(outcome.rowsRead, outcome.queued, outcome.duplicates, outcome.conflicts, outcome.invalid)
            + (dryRun ? " (dry run: nothing written)" : "")
    }

    private static func counts(_ read: Int, _ queued: Int, _ duplicates: Int, _ conflicts: Int, _ invalid: Int) -> String {
        "\(read) row\(read == 1 ? "" : "s"): \(queued) queued, \(duplicates) duplicate\(duplicates == 1 ? "" : "s"), "
            + "\(conflicts) conflict\(conflicts == 1 ? "" : "s"), \(invalid) invalid"
    }
}
