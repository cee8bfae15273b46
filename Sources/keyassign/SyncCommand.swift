import ArgumentParser
import KeyAssign
import Logging

struct SyncCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Import CSV exports, then run: the one line for cron.",
        discussion: """
            Imports FILE_OR_DIR ... exactly like `import` (a file already imported is skipped), \
            then sends what is queued exactly like `run`, in one process. A file in a \
            directory still changing (see --settle) is waited for, up to --max-wait seconds, \
            then left for the next run.

            A file that cannot be read or has no license-key column does not stop the run: \
            the valid files' rows (and anything queued earlier) are still sent, and the exit \
            status is then 65, unless the run itself ended with 3, 74, 75, 78, 130 or 143, \
            which take precedence. A database failure during the import (74) stops before \
            the run. Otherwise the status is the run's (see `keyassign run --help`).
            """
    )

    @OptionGroup var columns: ImportArguments

    @OptionGroup var arguments: RunArguments

    @Argument(help: ArgumentHelp("CSV files or directories.", valueName: "FILE_OR_DIR"))
    var paths: [String]

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one CSV file or directory") }
    }

    func run() throws {
        let started = Timestamps.monotonic()
        // Bad --map or --delimiter values are usage errors, shown with the usage, before
        // anything starts (and before any metrics file: see docs/scheduling.md).
        let importSettings = try columns.importOptions(databasePath: arguments.database.path, dryRun: false)
        let logger = RunSetup.logger(quiet: arguments.quiet)
        let result = importAndRun(importSettings, logger: logger)
        let status = MetricsFile.finish(
            path: arguments.metricsFile, status: result.status, summary: result.summary,
            databasePath: arguments.database.path, startedAt: started, logger: logger)
        throw ExitCode(status.rawValue)
    }

    /// The status to exit with, and the run's summary when the run got that far.
    private func importAndRun(_ importSettings: ImportOptions, logger: Logger) -> (
        status: ExitStatus, summary: RunSummary?
    ) {
        let options: RunOptions
        switch arguments.runOptions() {
        case .failure(let error):
            logger.error("\(error.message)")
            return (error.status, nil)
        case .success(let built):
            options = built
        }
        // A second cron job must exit at once, before importing anything; and no other
        // writer may slip in between this sync's import and its run.
        let lock: DatabaseLock?
        do {
            lock = try DatabaseLock.acquire(databasePath: options.databasePath, command: "sync")
        } catch {
            logger.error("\(error)")
            return (ExitStatus(for: error), nil)
        }
        defer { lock?.release() }
        var importOptions = importSettings
        importOptions.settleWait = options.maxWait
        let quiet = arguments.quiet
        let imported = ImportJob.run(
            paths, options: importOptions,
            output: { if !quiet { StandardStreams.out(TerminalText.escape($0) + "\n") } },
            errorOutput: { StandardStreams.error($0) })
        if imported.exitStatus != .ok && imported.exitStatus != .dataError {
            return (imported.exitStatus, nil)
        }
        let run = RunSetup.executeWithSummary(options, publicKeys: arguments.publicKeys, logger: logger)
        if imported.exitStatus == .dataError && [.ok, .someFailed, .quotaSpent].contains(run.status) {
            logger.error("some input files could not be imported (see above); the rows that were queued have been sent")
            return (.dataError, run.summary)
        }
        return run
    }
}
