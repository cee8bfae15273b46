import ArgumentParser
import Foundation
import KeyAssign

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check the signatures of saved Key Manager replies.",
        discussion: """
            Prints one line per reply file on stdout, tab-separated: FILE, VERDICT, REASON, CODE. \
            VERDICT is trusted or untrusted. CODE is the signed code, or -. \
            REASON is ok, unreadable, or why the reply is untrusted. \
            The signature does not hold: envelope_not_json, envelope_missing_fields, unknown_key, unsigned, \
            signature_not_base64, signature_wrong_length, bad_signature. \
            The signature holds but the payload is unusable: payload_not_json, payload_missing_fields, \
            payload_mismatch, stale. The details of each untrusted reply go to stderr.

            Exit status: 0 every reply trusted; 1 some signature does not hold or some reply file is \
            unreadable; 2 every signature holds but some payload is unusable, differs from the unsigned \
            response, or is stale; 64 bad arguments, or a public key file that is unreadable or not an \
            RSA public key of 2048 to 8192 bits.
            """
    )

    @Option(
        name: .customLong("public-key"),
        help: ArgumentHelp(
            "A public key PEM file, named as in the replies' private_key_used (repeatable; a bare PATH is named global; several may share a NAME, and any of them may verify). NAME is letters, digits, _ and -; write ./PATH for a path that starts like NAME=.",
            valueName: "[NAME=]PATH"))
    var publicKeys: [String] = []

    @Option(
        name: .customLong("max-age"),
        help: ArgumentHelp(
            "Also reject replies whose signed timestamp is more than this many seconds from now (\(FlagRange.maxAge.text)).",
            valueName: "SECONDS"))
    var maxAge: Double?

    @Argument(help: ArgumentHelp("Reply files (the JSON envelope as received).", valueName: "REPLY.json"))
    var replies: [String] = []

    func validate() throws {
        if publicKeys.isEmpty { throw ValidationError("give at least one --public-key [NAME=]PATH") }
        if replies.isEmpty { throw ValidationError("give at least one REPLY.json file") }
        try checkFlag(.maxAge, maxAge)
    }

    func run() throws {
        let check: StoredReplyCheck
        do {
            check = try StoredReplyCheck(publicKeySpecs: publicKeys, maxAge: maxAge)
        } catch let error as KeyAssignError {
            FileHandle.standardError.write(Data("keyassign verify: \(error.message)\n".utf8))
            throw ExitCode(error.status.rawValue)
        }
        let (lines, status) = check.check(files: replies)
        for line in lines {
            print(line.text)
            if let detail = line.detail {
                FileHandle.standardError.write(Data("keyassign verify: \(line.file): \(detail)\n".utf8))
            }
        }
        if status != .ok { throw ExitCode(status.rawValue) }
    }
}
