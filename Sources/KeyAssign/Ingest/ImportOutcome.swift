/// All files of one `import`.
public struct ImportOutcome: Sendable {
    public var files: [FileImportResult] = []
    /// 0 when every file was read; 65 when one could not be read or had no key column;
    /// 74 when the database failed (then later files were not tried); 75 when another writer
    /// (a run) held the database (then nothing was tried).
    public var exitStatus: ExitStatus = .ok

    public var rowsRead: Int { files.reduce(0) { $0 + $1.rowsRead } }
    public var queued: Int { files.reduce(0) { $0 + $1.queued } }
    public var duplicates: Int { files.reduce(0) { $0 + $1.duplicates } }
    public var conflicts: Int { files.reduce(0) { $0 + $1.conflicts } }
    public var invalid: Int { files.reduce(0) { $0 + $1.invalid } }
}
