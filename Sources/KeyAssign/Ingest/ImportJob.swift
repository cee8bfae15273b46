#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `keyassign import` (and the first half of `sync`): which files are ready (`InputFiles`),
/// the database's writer lock, then each file through one `FileImporter`, with one summary
/// line per file and a total (`ImportSummary`).
public enum ImportJob {
    /// Imports `paths` (files, or directories meaning their `*.csv` in name order) into the
    /// work database: `db` when given (the caller keeps it open), else `options.databasePath`.
    /// The summary goes to `output`, errors about files to `errorOutput`. Never throws: a
    /// database failure stops at the file it met (later files are not tried) and is in the
    /// outcome's status, so that the files done before it are still reported.
    public static func run(
        _ paths: [String], options: ImportOptions, into db: Database? = nil,
        output: (String) -> Void, errorOutput: (String) -> Void
    ) -> ImportOutcome {
        var outcome = ImportOutcome()
        let scan = InputFiles.scan(
            paths, settle: options.settle, readyMarker: options.readyMarker,
            settleWait: options.settleWait, announce: output)
        for (path, message) in scan.failures {
            errorOutput(message)
            outcome.files.append(FileImportResult(path: path, status: .failed(message)))
            outcome.exitStatus = .dataError
        }
        for message in scan.warnings { errorOutput("warning: " + message) }
        for note in scan.notes { output(note) }
        for note in scan.unsettledNotes(settle: options.settle, now: InputFiles.now()) { output(note) }

        // A file's import is one long write transaction (seconds for millions of rows):
        // alongside a run it would hold SQLite's write lock past the run's busy timeout. So an
        // import never runs beside another writer: it waits up to `lockWait`, then refuses
        // with 75. (Even a dry run writes and rolls back.) The lock is held until this returns.
        let lock: DatabaseLock?
        do {
            let inMemory = options.dryRun && db == nil && access(options.databasePath, F_OK) != 0
            lock =
                inMemory
                ? nil
                : try DatabaseLock.acquire(
                    databasePath: db?.path ?? options.databasePath,
                    command: options.dryRun ? "import --dry-run" : "import",
                    wait: options.lockWait)
        } catch {
            return stopped(outcome, by: error, errorOutput: errorOutput)
        }
        defer { lock?.release() }

        let database: Database
        do {
            if let db {
                database = db
            } else if options.dryRun && access(options.databasePath, F_OK) != 0 {
                // A dry run against a database that does not exist yet must not create it.
                database = try Database(path: ":memory:")
            } else {
                database = try Database(path: options.databasePath)
            }
        } catch {
            return stopped(outcome, by: error, errorOutput: errorOutput)
        }

        do {
            let importer = try FileImporter(database: database, options: options)
            for file in scan.ready {
                let result = try importer.importFile(file.path, mustBeSettled: file.mustBeSettled)
                if case .failed(let message) = result.status {
                    errorOutput(message)
                    outcome.exitStatus = .dataError
                }
                outcome.files.append(result)
                for line in ImportSummary.lines(for: result) { output(line) }
            }
        } catch {
            return stopped(outcome, by: error, errorOutput: errorOutput)
        }
        output(ImportSummary.totals(outcome, dryRun: options.dryRun))
        return outcome
    }

    /// The same, with errors and summary to one place.
    public static func run(
        _ paths: [String], options: ImportOptions, into db: Database? = nil,
        output: (String) -> Void
    ) -> ImportOutcome {
        run(paths, options: options, into: db, output: output, errorOutput: output)
    }

    /// The outcome so far, ended by `error`: its message said, its status kept (the lock's 75,
    /// a missing file's 65, the database's 74).
    private static func stopped(
        _ outcome: ImportOutcome, by error: any Error,
        errorOutput: (String) -> Void
    ) -> ImportOutcome {
        var outcome = outcome
        errorOutput("\(error)")
        outcome.exitStatus = ExitStatus(for: error)
        return outcome
    }
}
