import ArgumentParser
import KeyAssign

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// A write to a connection the server has just closed raises SIGPIPE, whose default action
// ends the process on the spot, rows in flight unrecorded. libcurl's CURLOPT_NOSIGNAL does
// not cover every path (before 7.87, OpenSSL's own writes could raise it): ignored, the write
// fails with EPIPE and the transfer ends as an error the runner records.
signal(SIGPIPE, SIG_IGN)

// ArgumentParser's own `main()`, except that a command line refused because of a misspelt
// option says so, with the nearest real one (`UnknownOption`).
let arguments = Array(CommandLine.arguments.dropFirst())
do {
    var command = try KeyAssignCommand.parseAsRoot(arguments)
    try command.run()
} catch {
    if KeyAssignCommand.exitCode(for: error) == .validationFailure, let unknown = UnknownOption.find(in: arguments) {
        StandardStreams.error(unknown.message)
        exit(ExitCode.validationFailure.rawValue)
    }
    KeyAssignCommand.exit(withError: error)
}
