/// A row that needs a person — `failed`, `uncertain`, or an input row that could not be
/// queued — with why, in words for sales ops, and the next step as a command to paste.
public struct ActionItem: Sendable, Equatable {
    /// The row's state, or `invalid` for an input row that was never queued.
    public var kind: String
    public var licenseKey: String?
    public var ownerName: String?
    public var email: String?
    public var sourceFile: String
    public var sourceLine: Int64
    public var reason: String
    /// What to do, in order; each may come with the exact command.
    public var steps: [Step]

    public struct Step: Sendable, Equatable {
        public var advice: String
        public var command: String?

        public init(_ advice: String, command: String? = nil) {
            self.advice = advice
            self.command = command
        }
    }

    public init(
        kind: String, licenseKey: String?, ownerName: String?, email: String?, sourceFile: String,
        sourceLine: Int64, reason: String, steps: [Step]
    ) {
        self.kind = kind
        self.licenseKey = licenseKey
        self.ownerName = ownerName
        self.email = email
        self.sourceFile = sourceFile
        self.sourceLine = sourceLine
        self.reason = reason
        self.steps = steps
    }

    /// A queued row in `failed` or `uncertain` (other states need no person).
    public init(row: ReportRow, databasePath: String) {
        let db = "--db " + ShellWord.quote(databasePath)
        // `--key=VALUE` and `--`: a key from an export that starts with "-" stays a value.
        let keyOption = ShellWord.quote("--key=" + row.licenseKey)
        let keyArgument = "-- " + ShellWord.quote(row.licenseKey)
        var steps: [Step]
        switch row.state {
        case WorkState.uncertain.rawValue:
            steps = [
                Step("look at every attempt for this key", command: "keyassign history \(db) \(keyArgument)"),
                Step(
                    "ask the license server who owns the key now; only if it is not this buyer, send it again",
                    command: "keyassign retry \(db) --state uncertain \(keyOption)"),
            ]
        default:
            if let code = row.code, code != 800, code != 801 {
                steps = [
                    Step(
                        "ask the license server's vendor what code \(code) means; then send it again",
                        command: "keyassign retry \(db) \(keyOption)")
                ]
            } else {
                steps = [
                    Step(
                        "fix the cause above, then put the row back in the queue; the next run sends it",
                        command: "keyassign retry \(db) \(keyOption)")
                ]
            }
        }
        self.init(
            kind: row.state, licenseKey: row.licenseKey, ownerName: row.ownerName, email: row.email,
            sourceFile: row.sourceFile, sourceLine: row.sourceLine, reason: SplitReport.plainReason(row), steps: steps)
    }

    /// An input row the import refused.
    public init(
        invalidSourceFile sourceFile: String, sourceLine: Int64, reason: String, licenseKey: String?,
        ownerName: String?, email: String?, databasePath: String
    ) {
        self.init(
            kind: "invalid", licenseKey: licenseKey, ownerName: ownerName, email: email, sourceFile: sourceFile,
            sourceLine: sourceLine, reason: "invalid input: " + reason,
            steps: [
                Step(
                    "correct line \(sourceLine) in the export (or in the shop), then import the corrected file; "
                        + "rows already queued are skipped",
                    command: "keyassign import --db \(ShellWord.quote(databasePath)) \(ShellWord.quote(sourceFile))")
            ])
    }
}
