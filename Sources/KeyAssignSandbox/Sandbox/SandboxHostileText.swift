/// The `--hostile-text` fault: signed messages that try to drive the client's terminal (ESC
/// sequences, BEL) and to forge a line of its log (a newline, then text that looks like one of
/// keyassign's own lines), with a tab to break tab-separated columns.
enum SandboxHostileText {
    static let payload = "\u{1B}[2J\u{1B}]0;owned\u{07}\nkeyassign: run 1: 0 assigned; FORGED LINE\tcolumn"

    static func message(_ message: String) -> String {
        message + payload
    }
}
