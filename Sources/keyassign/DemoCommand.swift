import ArgumentParser
import KeyAssign
import KeyAssignSandbox

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The whole pipeline on samples/ against an embedded sandbox server: no configuration.",
        discussion: """
            Starts the sandbox license server in-process on a free loopback port with a fresh \
            state directory (or the one --state-dir names, reused), imports samples/, runs with a \
            few injected faults, and prints the outcome and where the database is. Exit status 0 \
            when the pipeline ran to its end, even with rows failed or uncertain (they are part of \
            what it shows); otherwise as for `keyassign run`.
            """
    )

    @Option(
        name: .long,
        help: ArgumentHelp("The CSV exports to import (default: ./samples, or the package's).", valueName: "DIR"))
    var samples: String?

    @Option(
        name: .customLong("state-dir"),
        help: ArgumentHelp(
            "Keep the sandbox state and the database here (default: a new temporary directory).", valueName: "DIR"))
    var stateDirectory: String?

    func run() throws {
        try exitingWithStatus {
            try Demo.run(Demo.Options(samplesDirectory: samples, stateDirectory: stateDirectory)) {
                StandardStreams.out($0)
            }
        }
    }
}
