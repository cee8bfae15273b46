/// What happened to one input file.
public struct FileImportResult: Sendable, Equatable {
    public enum Status: Sendable, Equatable {
        /// Read to the end; its rows are queued or recorded (or, in a dry run, would be).
        case imported
        /// A file with the same SHA-256 was imported before: nothing done.
        case alreadyImported(previousPath: String, importedAt: String)
        /// Not read, and left for a later run: why (not a regular file, still changing).
        case skipped(String)
        /// Unreadable or without a key column: nothing of it kept.
        case failed(String)
    }

    public var path: String
    public var status: Status
    public var rowsRead = 0
    public var queued = 0
    public var duplicates = 0
    public var conflicts = 0
    public var invalid = 0
    /// The first few problems, as `file:line: reason`.
    public var problems: [String] = []
    /// How the columns were mapped and the delimiter used, for the summary.
    public var mappingSummary = ""
    /// Already imported, known by its path, size, modification time and inode alone: not read.
    public var unchangedSinceImport = false

    public init(path: String, status: Status) {
        self.path = path
        self.status = status
    }
}
