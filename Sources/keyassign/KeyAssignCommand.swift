import ArgumentParser
import KeyAssign

struct KeyAssignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keyassign",
        abstract: "Assign license keys from sales exports through a Key Manager server, verifying every signed reply.",
        discussion: """
            keyassign reads the nightly CSV exports of a shop, a payment service or a CRM (`import`), \
            queues one row per license key in a SQLite work database, and assigns each key to its \
            buyer on the Key Manager license server (`run`; `sync` does both), verifying the RSA \
            signature of every reply. Every attempt is recorded: `status`, `report`, `history` and \
            `audit` say what happened to each key, `retry` sends rows again, and `reconcile` settles \
            doubtful rows from the server's signed key listing. `demo` shows it all against a local \
            sandbox server. The commands' own pages (keyassign help COMMAND, man keyassign.COMMAND) \
            say more; docs/scheduling.md covers cron, systemd and monitoring.

            Exit statuses, shared by every command (sysexits(3) where one fits):
            0    everything ended well (run: every row assigned or rejected)
            1    some work did not end well: rows failed, uncertain or left waiting
            2    verify: every signature holds but some payload is unusable
            3    run: stopped by an auth or access refusal of the API key
            10   run: the server's quota is spent for now; the rows wait for the next run
            64   bad flags or arguments (EX_USAGE)
            65   an export unreadable, or without a key, name or email column (EX_DATAERR)
            69   run: the server stayed unreachable for --max-wait (EX_UNAVAILABLE)
            74   the database or the file system failed (EX_IOERR)
            75   another keyassign writer holds the database (EX_TEMPFAIL)
            78   bad configuration: key, URL, certificate (EX_CONFIG)
            130  stopped by SIGINT
            143  stopped by SIGTERM
            """,
        version: KeyAssignVersion.string,
        subcommands: [
            DemoCommand.self, ImportCommand.self, RunCommand.self, SyncCommand.self, ReconcileCommand.self,
            StatusCommand.self, ReportCommand.self,
            RetryCommand.self, HistoryCommand.self, AuditCommand.self, PruneCommand.self, VerifyCommand.self,
            SandboxCommand.self,
        ]
    )
}
