import Foundation
import Testing

@testable import KeyAssign

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Issue 21: an export folder keeps years of files. A file imported before whose path, size,
/// modification time and inode are unchanged costs a `stat`, not a read; the nightly summary
/// lists only tonight's new files, with one line for those skipped as already imported.
@Suite struct IngestUnchangedFileTests {
    /// Replaces the file's bytes in place (same inode, same length) and puts its modification
    /// time back: what stat says is unchanged, only a read could tell.
    static func replaceKeepingStat(_ path: String, with text: String) throws {
        var before = stat()
        #expect(stat(path, &before) == 0)
        let bytes = Array(text.utf8)
        #expect(bytes.count == Int(before.st_size))
        let fd = open(path, O_WRONLY)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(pwrite(fd, bytes, bytes.count, 0) == bytes.count)
        #if canImport(Darwin)
            var times = [before.st_atimespec, before.st_mtimespec]
        #else
            var times = [before.st_atim, before.st_mtim]
        #endif
        #expect(futimens(fd, &times) == 0)
        var after = stat()
        #expect(fstat(fd, &after) == 0)
        #expect(after.st_ino == before.st_ino && after.st_size == before.st_size)
        #expect(FileIdentity(after) == FileIdentity(before))
    }

    func importFolder(_ folder: String, db: String) throws -> CLI.Result {
        try CLI.run(["import", "--db", db, "--settle", "0", folder])
    }

    func keys(_ db: String) throws -> [String] {
        let statement = try Database(path: db).prepare("SELECT license_key FROM work ORDER BY license_key")
        var keys: [String] = []
        while try statement.step() { keys.append(statement.string(0) ?? "") }
        return keys
    }

    @Test func aFileUnchangedByStatIsNotReadAgain() throws {
        let dir = try TemporaryDirectory()
        let folder = dir.path + "/exports"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let db = dir.path + "/work.sqlite"
        let a = folder + "/2026-12-01.csv"
        try "license_key,owner_name,email\nAAAA-1111,Ann Doe,ann@example.com\nAAAA-2222,Ann Doe,ann@example.com\n"
            .write(toFile: a, atomically: false, encoding: .utf8)
        let first = try importFolder(folder, db: db)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try keys(db) == ["AAAA-1111", "AAAA-2222"])

        // Other keys, the same length, the same inode and modification time: had the file been
        // read, its SHA-256 would differ and these two rows would be queued.
        try Self.replaceKeepingStat(
            a,
            with: "license_key,owner_name,email\nBBBB-1111,Ann Doe,ann@example.com\nBBBB-2222,Ann Doe,ann@example.com\n"
        )
        let b = folder + "/2026-12-02.csv"
        try "license_key,owner_name,email\nCCCC-1111,Ann Doe,ann@example.com\n".write(
            toFile: b, atomically: false, encoding: .utf8)
        let second = try importFolder(folder, db: db)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try keys(db) == ["AAAA-1111", "AAAA-2222", "CCCC-1111"])
        // Tonight's new file has its line; the one already imported only the common line.
        #expect(second.stdout.contains("2026-12-02.csv: 1 row: 1 queued"), "\(second.stdout)")
        #expect(!second.stdout.contains("2026-12-01.csv"), "\(second.stdout)")
        #expect(
            second.stdout.contains(
                "1 file skipped, already imported (1 unchanged in path, size, modification time and inode: not read; 0 known by SHA-256)"
            ), "\(second.stdout)")
        #expect(second.stdout.contains("total: 1 file, 1 row: 1 queued"), "\(second.stdout)")
    }

    @Test func aTouchedFileIsHashedOnceThenKnownByStatAgain() throws {
        let dir = try TemporaryDirectory()
        let db = dir.path + "/work.sqlite"
        let a = dir.path + "/sales.csv"
        try "license_key,owner_name,email\nAAAA-1111,Ann Doe,ann@example.com\n".write(
            toFile: a, atomically: false, encoding: .utf8)
        #expect(try CLI.run(["import", "--db", db, a]).status == 0)
        // Touched: its modification time changed, its bytes did not. Hashed, found by SHA-256.
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -3600)], ofItemAtPath: a)
        let touched = try CLI.run(["import", "--db", db, a])
        #expect(
            touched.stdout.contains(
                "1 file skipped, already imported (0 unchanged in path, size, modification time and inode: not read; 1 known by SHA-256)"
            ), "\(touched.stdout)")
        // What stat says was recorded again: the next night it is not read.
        try Self.replaceKeepingStat(a, with: "license_key,owner_name,email\nZZZZ-9999,Ann Doe,ann@example.com\n")
        let again = try CLI.run(["import", "--db", db, a])
        #expect(
            again.stdout.contains("(1 unchanged in path, size, modification time and inode: not read"),
            "\(again.stdout)")
        #expect(try keys(db) == ["AAAA-1111"])

        // A real change (new bytes, new modification time) is read and imported.
        try "license_key,owner_name,email\nDDDD-1111,Ann Doe,ann@example.com\nDDDD-2222,Ann Doe,ann@example.com\n"
            .write(toFile: a, atomically: false, encoding: .utf8)
        let changed = try CLI.run(["import", "--db", db, a])
        #expect(changed.status == 0, "\(changed.stderr)")
        #expect(try keys(db) == ["AAAA-1111", "DDDD-1111", "DDDD-2222"])
        #expect(
            try Database(path: db).scalarInt(
                "SELECT count(*) FROM imports WHERE file_inode IS NOT NULL AND file_mtime_ns > 0") == 2)
    }
}
