/// A word quoted for a POSIX shell, for the commands `report --html` tells a person to
/// paste: a license key or file name from a CSV export must not become shell syntax
/// (`$(…)`, `;`, a space) in someone's terminal.
public enum ShellWord {
    public static func quote(_ word: String) -> String {
        let plain =
            !word.isEmpty
            && word.unicodeScalars.allSatisfy { scalar in
                switch scalar {
                case "a"..."z", "A"..."Z", "0"..."9", "-", "_", ".", "/", ":", "=", "@", "%", "+", ",": true
                default: false
                }
            }
        if plain { return word }
        // By scalar, not Character: a quote followed by a combining mark is still a quote to the shell.
        var out = "'"
        for scalar in word.unicodeScalars {
            if scalar == "'" { out += "'\\''" } else { out.unicodeScalars.append(scalar) }
        }
        return out + "'"
    }
}
