import ArgumentParser
import KeyAssign

/// A command line the parser refused because of an option no command has: named as such,
/// with the nearest real option ("unknown option '--sever'; did you mean '--server'?"),
/// rather than what the parser reports first, which for a misspelt required flag is
/// "Missing expected argument '--server'" and sends the reader looking in the wrong place.
///
/// Only consulted after the parser has refused the command line, so it can never reject one
/// the parser accepts. A command's options are read from its own help text (hidden ones
/// included), which is generated from its declarations.
struct UnknownOption {
    var given: String
    var suggestion: String?
    var command: String

    var message: String {
        "unknown option '\(given)'" + (suggestion.map { "; did you mean '\($0)'?" } ?? "")
            + " (keyassign \(command) --help lists its options)"
    }

    static func find(in arguments: [String]) -> UnknownOption? {
        let subcommands = KeyAssignCommand.configuration.subcommands
        var command: ParsableCommand.Type = KeyAssignCommand.self
        var name = ""
        for argument in arguments {
            if argument == "--" { break }
            if !argument.hasPrefix("-"),
                let match = subcommands.first(where: { $0._commandName == argument })
            {
                command = match
                name = argument
                break
            }
        }
        let help =
            command == KeyAssignCommand.self
            ? KeyAssignCommand.helpMessage(includeHidden: true)
            : KeyAssignCommand.helpMessage(for: command, includeHidden: true)
        let known = Set(longOptions(in: help) + ["--help", "--version"])
        for argument in arguments {
            if argument == "--" { break }
            guard argument.hasPrefix("--"), argument.count > 2 else { continue }
            let option = String(argument.prefix { $0 != "=" })
            if known.contains(option) { continue }
            let nearest = known.map { ($0, EditDistance.between(option, $0)) }.min { ($0.1, $0.0) < ($1.1, $1.0) }
            let suggestion = nearest.flatMap { $0.1 <= max(2, option.count / 3) ? $0.0 : nil }
            return UnknownOption(given: option, suggestion: suggestion, command: name.isEmpty ? "" : name)
        }
        return nil
    }

    /// Every `--name` token in a help text.
    static func longOptions(in help: String) -> [String] {
        let characters = Array(help)
        var names: [String] = []
        var index = 0
        while index + 2 < characters.count {
            let startsToken =
                index == 0
                || !(characters[index - 1].isLetter || characters[index - 1].isNumber || characters[index - 1] == "-")
            if startsToken && characters[index] == "-" && characters[index + 1] == "-" && characters[index + 2].isLetter
            {
                var end = index + 2
                while end < characters.count
                    && (characters[end].isLetter || characters[end].isNumber || characters[end] == "-")
                { end += 1 }
                names.append(String(characters[index..<end]))
                index = end
            } else {
                index += 1
            }
        }
        return names
    }
}
