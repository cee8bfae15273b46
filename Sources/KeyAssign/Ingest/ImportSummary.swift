/// The text `import` prints: one line per file new tonight (with its first few problems), one
/// line for all the files skipped as already imported, and the total. A folder that keeps
/// years of exports would otherwise print a line per file it ever held, every night.
enum ImportSummary {
    static func lines(for result: FileImportResult) -> [String] {
        switch result.status {
        case .failed:
            return ["\(result.path): not imported (see the error message)"]
        case .skipped(let why):
            return ["\(result.path): not imported: \(why)"]
        case .alreadyImported:
            return []
        case .imported:
            var lines = [
                "\(result.path): \(counts(result.rowsRead, result.queued, result.duplicates, result.conflicts, result.invalid))"
                    + (result.mappingSummary.isEmpty ? "" : " [\(result.mappingSummary)]")
            ]
            lines += result.problems.map { "  " + $0 }
            let more = result.invalid + result.conflicts - result.problems.count
            if more > 0 { lines.append("  … and \(more) more (keyassign report --invalid)") }
            return lines
        }
    }

    static func totals(_ outcome: ImportOutcome, dryRun: Bool) -> String {
        var skipped = 0
        var unchanged = 0
        for file in outcome.files {
            if case .alreadyImported = file.status {
                skipped += 1
                if file.unchangedSinceImport { unchanged += 1 }
            }
        }
        let files = outcome.files.count - skipped
        let skippedLine =
            skipped == 0
            ? ""
            : "\(skipped) file\(skipped == 1 ? "" : "s") skipped, already imported"
                + " (\(unchanged) unchanged in path, size, modification time and inode: not read; \(skipped - unchanged) known by SHA-256)\n"
        return skippedLine + "total: \(files) file\(files == 1 ? "" : "s"), "
            + counts(outcome.rowsRead, outcome.queued, outcome.duplicates, outcome.conflicts, outcome.invalid)
            + (dryRun ? " (dry run: nothing written)" : "")
    }

    private static func counts(_ read: Int, _ queued: Int, _ duplicates: Int, _ conflicts: Int, _ invalid: Int)
        -> String
    {
        "\(read) row\(read == 1 ? "" : "s"): \(queued) queued, \(duplicates) duplicate\(duplicates == 1 ? "" : "s"), "
            + "\(conflicts) conflict\(conflicts == 1 ? "" : "s"), \(invalid) invalid"
    }
}
