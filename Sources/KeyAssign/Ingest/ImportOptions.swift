/// What `keyassign import` (and `sync`) is asked to do.
public struct ImportOptions: Sendable {
    public var databasePath: String
    /// `--map`: field → column header, overriding the automatic mapping.
    public var columnMap: [ImportField: String]
    /// `--map-file`: mappings chosen per file by name pattern; a matching section overrides
    /// `columnMap` field by field.
    public var mapFile: ColumnMapFile?
    /// `--allow-missing`: required fields (owner_name, email) a file may lack; the rows are
    /// then sent with that field empty. Without it such a file is refused.
    public var allowMissing: Set<ImportField> = []
    /// nil: detected per file from its header line (or its `sep=` line).
    public var delimiter: CSVDelimiter?
    /// Parse, validate and report, but write nothing.
    public var dryRun: Bool
    /// `--encoding`: nil reads a file by its byte-order mark, else as UTF-8, and refuses it
    /// whole when it is not (see `InputEncoding`).
    public var encoding: InputEncoding?
    /// `--settle`: a file found in a directory is read only once it has not changed for this
    /// many seconds (0: at once). Files named one by one are taken as ready.
    public var settle: Double = 60
    /// `--ready-marker`: a file found in a directory is read only once `NAME SUFFIX` exists.
    public var readyMarker: String?
    /// `sync`: how long to wait, at most, for files still changing to settle (0: not at all).
    public var settleWait: Double = 0
    /// `--wait`: how long to wait for a run (or another writer) to release the database
    /// before refusing with status 75. See `DatabaseLock`.
    public var lockWait: Double

    public init(
        databasePath: String, columnMap: [ImportField: String] = [:],
        delimiter: CSVDelimiter? = nil, dryRun: Bool = false, lockWait: Double = 0
    ) {
        self.databasePath = databasePath
        self.columnMap = columnMap
        self.delimiter = delimiter
        self.dryRun = dryRun
        self.lockWait = lockWait
    }

    /// The mapping to try on the file at `path`: `--map`, overridden field by field by the
    /// first `--map-file` section that matches it (whose columns must then be in the file).
    func columnRules(for path: String) -> (
        overrides: [ImportField: String], strict: Set<ImportField>,
        allowMissing: Set<ImportField>
    ) {
        guard let section = mapFile?.section(for: path) else { return (columnMap, [], allowMissing) }
        return (
            columnMap.merging(section.map) { _, fromFile in fromFile }, Set(section.map.keys),
            allowMissing.union(section.allowMissing)
        )
    }
}
