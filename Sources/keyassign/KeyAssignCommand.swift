import ArgumentParser
import KeyAssign

struct KeyAssignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keyassign",
        abstract: "Assign license keys from sales exports through a Key Manager server, verifying every signed reply.",
        version: KeyAssignVersion.string,
        subcommands: [
            DemoCommand.self, ImportCommand.self, RunCommand.self, SyncCommand.self, ReconcileCommand.self, StatusCommand.self, ReportCommand.self,
            RetryCommand.self, HistoryCommand.self, AuditCommand.self, PruneCommand.self, VerifyCommand.self, SandboxCommand.self,
        ]
    )
}
