import Foundation
import Testing

@testable import KeyAssign

/// A scratch database and files for one test.
final class ImportFixture {
    let dir: TemporaryDirectory
    let db: Database
    var output: [String] = []

    init() throws {
        dir = try TemporaryDirectory()
        db = try Database(path: dir.path + "/work.sqlite")
    }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        try write(name, bytes: Array(text.utf8))
    }

    @discardableResult
    func write(_ name: String, bytes: [UInt8]) throws -> String {
        let path = dir.path + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The lock wait of every in-process import in the tests. Other tests in this process spawn
    /// the CLI: a child between fork and exec holds a copy of every open descriptor, the lock
    /// file's too (O_CLOEXEC closes it only at exec), so a lock this process has just released
    /// can look held for a moment. A real second writer would hold it far longer.
    static let lockWait = 10.0

    /// For tests about other things than the owner-name and email columns, whose small
    /// files have neither: `--allow-missing owner_name --allow-missing email`.
    static let namesOptional: Set<ImportField> = [.ownerName, .email]

    static func namesOptional(_ options: ImportOptions) -> ImportOptions {
        var options = options
        options.allowMissing = namesOptional
        return options
    }

    func run(
        _ paths: [String], allowMissing: Set<ImportField> = [], map: [ImportField: String] = [:],
        delimiter: CSVDelimiter? = nil, dryRun: Bool = false, encoding: InputEncoding? = nil,
        mapFile: ColumnMapFile? = nil
    ) -> ImportOutcome {
        var options = ImportOptions(
            databasePath: db.path, columnMap: map, delimiter: delimiter, dryRun: dryRun,
            lockWait: Self.lockWait)
        options.allowMissing = allowMissing
        options.mapFile = mapFile
        options.encoding = encoding
        options.settle = 0  // the files a test writes are complete (settling: IngestHardeningTests)
        return ImportJob.run(paths, options: options, into: db, output: { self.output.append($0) })
    }

    struct WorkRow: Equatable {
        var key: String
        var owner: String?
        var email: String?
        var state: String
        var file: String
        var line: Int64
    }

    func work() throws -> [WorkRow] {
        let statement = try db.prepare(
            """
            SELECT license_key, owner_name, email, state, \(WorkSourcePath.sql), source_line FROM work ORDER BY id
            """)
        var rows: [WorkRow] = []
        while try statement.step() {
            rows.append(
                WorkRow(
                    key: statement.string(0)!, owner: statement.string(1), email: statement.string(2),
                    state: statement.string(3)!, file: statement.string(4)!, line: statement.int(5)))
        }
        return rows
    }

    func invalid() throws -> [(line: Int64, reason: String, raw: String, key: String?)] {
        let statement = try db.prepare("SELECT source_line, reason, raw, license_key FROM invalid_rows ORDER BY id")
        var rows: [(Int64, String, String, String?)] = []
        while try statement.step() {
            rows.append((statement.int(0), statement.string(1)!, statement.string(2)!, statement.string(3)))
        }
        return rows
    }

    func count(_ table: String) throws -> Int64 { try db.scalarInt("SELECT count(*) FROM \(table)") ?? -1 }
}
