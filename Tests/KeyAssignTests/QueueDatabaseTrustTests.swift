import Foundation
import Testing

@testable import KeyAssign

/// Issue 19, item 3: database files keyassign can trust. A `--db` path that another local user
/// could have planted or can write is refused with 77 (EX_NOPERM) and the reason, before SQLite
/// opens or creates anything, unless `--allow-shared-db` says the set-up is shared on purpose.
/// The other user is `nobody` (files chowned to it, which needs root).
@Suite struct QueueDatabaseTrustTests {
    static let nobody: uid_t = 65534
    static let csv = "license_key,owner_name,email\nKEY-1,Ann,ann@example.com\n"

    static func importInto(_ db: String, _ dir: TemporaryDirectory, _ extra: [String] = []) throws -> CLI.Result {
        let file = dir.path + "/export-\(UUID().uuidString).csv"
        try csv.write(toFile: file, atomically: true, encoding: .utf8)
        return try CLI.run(["import"] + extra + ["--db", db, file])
    }

    static func mode(_ path: String) -> mode_t {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_mode & 0o7777 : 0
    }

    /// A directory anyone may write, as /tmp is: sticky, so nobody can replace another's file.
    static func stickyShared(_ dir: TemporaryDirectory) throws -> String {
        let shared = dir.path + "/shared"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: false)
        #expect(chmod(shared, 0o1777) == 0)
        return shared
    }

    @Test(.enabled(if: getuid() == 0, "chown to another user needs root"))
    func anotherUsersSymlinkAtTheDbPathIsRefusedAndNothingIsCreatedAtItsTarget() throws {
        let dir = try TemporaryDirectory()
        let shared = try Self.stickyShared(dir)
        let theirs = dir.path + "/theirs"
        try FileManager.default.createDirectory(atPath: theirs, withIntermediateDirectories: false)
        #expect(chown(theirs, Self.nobody, Self.nobody) == 0)
        let db = shared + "/keyassign.sqlite"
        #expect(symlink(theirs + "/stolen.sqlite", db) == 0)
        #expect(lchown(db, Self.nobody, Self.nobody) == 0)

        let result = try Self.importInto(db, dir)
        #expect(result.status == 77, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("symbolic link"), "stderr: \(result.stderr)")
        #expect(access(theirs + "/stolen.sqlite", F_OK) != 0, "the database was created at the link's target")
        #expect(access(theirs + "/stolen.sqlite.lock", F_OK) != 0)
        // Reading commands refuse it too.
        #expect(try CLI.run(["status", "--db", db]).status == 77)
    }

    @Test func aNewDatabaseIsCreated0600InAStickySharedDirectoryWhateverTheUmask() throws {
        let dir = try TemporaryDirectory()
        let db = try Self.stickyShared(dir) + "/keyassign.sqlite"
        // Under a umask of 0, SQLite's own creation would leave the file 0644.
        let file = dir.path + "/export.csv"
        try Self.csv.write(toFile: file, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "umask 0 && exec \"$0\" \"$@\"", CLI.executableURL.path, "import", "--db", db, file]
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("KEYASSIGN_") }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(Self.mode(db) == 0o600, "mode \(String(Self.mode(db), radix: 8))")
        #expect(Self.mode(db + ".lock") == 0o600)
    }

    @Test func aDatabaseWritableByOthersIsRefusedUnlessSharedIsAllowed() throws {
        let dir = try TemporaryDirectory()
        let db = dir.path + "/work.sqlite"
        #expect(try Self.importInto(db, dir).status == 0)
        #expect(chmod(db, 0o666) == 0)
        for command in [["status"], ["history", "KEY-1"], ["retry", "--state", "failed"]] {
            let refused = try CLI.run(command + ["--db", db])
            #expect(refused.status == 77, "\(command): \(refused.stderr)")
            #expect(refused.stderr.contains("writable by others"), "\(command): \(refused.stderr)")
        }
        let imported = try Self.importInto(db, dir)
        #expect(imported.status == 77, "stderr: \(imported.stderr)")
        #expect(imported.stderr.contains("--allow-shared-db"), "says how to accept it: \(imported.stderr)")
        #expect(try CLI.run(["status", "--allow-shared-db", "--db", db]).status == 0)
        #expect(try Self.importInto(db, dir, ["--allow-shared-db"]).status == 0)

        #expect(chmod(db, 0o620) == 0)
        let group = try CLI.run(["status", "--db", db])
        #expect(group.status == 77 && group.stderr.contains("writable by its group"), "stderr: \(group.stderr)")
    }

    @Test(.enabled(if: getuid() == 0, "chown to another user needs root"))
    func aDatabaseWalOrLockFileOwnedByAnotherUserIsRefused() throws {
        let dir = try TemporaryDirectory()
        let db = dir.path + "/work.sqlite"
        #expect(try Self.importInto(db, dir).status == 0)

        #expect(chown(db, Self.nobody, Self.nobody) == 0)
        let database = try Self.importInto(db, dir)
        #expect(database.status == 77, "stderr: \(database.stderr)")
        #expect(database.stderr.contains("owned by nobody"), "stderr: \(database.stderr)")
        #expect(try CLI.run(["status", "--db", db]).status == 77)
        #expect(try CLI.run(["status", "--db", db, "--allow-shared-db"]).status == 0)
        #expect(chown(db, 0, 0) == 0)

        // A write-ahead log planted beside it: SQLite would read pages from it.
        let wal = db + "-wal"
        #expect(FileManager.default.createFile(atPath: wal, contents: nil, attributes: [.posixPermissions: 0o600]))
        #expect(chown(wal, Self.nobody, Self.nobody) == 0)
        let walResult = try Self.importInto(db, dir)
        #expect(walResult.status == 77, "stderr: \(walResult.stderr)")
        #expect(walResult.stderr.contains("write-ahead log"), "stderr: \(walResult.stderr)")
        #expect(unlink(wal) == 0)

        let lock = db + ".lock"
        #expect(chown(lock, Self.nobody, Self.nobody) == 0)
        let lockResult = try Self.importInto(db, dir)
        #expect(lockResult.status == 77, "stderr: \(lockResult.stderr)")
        #expect(lockResult.stderr.contains("lock file"), "stderr: \(lockResult.stderr)")
        #expect(try Self.importInto(db, dir, ["--allow-shared-db"]).status == 0)
    }

    @Test func aDirectoryOthersCanWriteWithoutTheStickyBitIsRefused() throws {
        let dir = try TemporaryDirectory()
        let open = dir.path + "/open"
        try FileManager.default.createDirectory(atPath: open, withIntermediateDirectories: false)
        #expect(chmod(open, 0o777) == 0)
        let db = open + "/work.sqlite"
        let result = try Self.importInto(db, dir)
        #expect(result.status == 77, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("not sticky"), "stderr: \(result.stderr)")
        #expect(access(db, F_OK) != 0, "nothing is created there")
        #expect(try Self.importInto(db, dir, ["--allow-shared-db"]).status == 0)
    }

    @Test(.enabled(if: getuid() == 0, "chown to another user needs root"))
    func aDirectoryOwnedByAnotherUserIsRefused() throws {
        let dir = try TemporaryDirectory()
        let theirs = dir.path + "/theirs"
        try FileManager.default.createDirectory(atPath: theirs, withIntermediateDirectories: false)
        #expect(chown(theirs, Self.nobody, Self.nobody) == 0)
        // Only its owner may write it, but that owner can replace the database at will.
        let result = try Self.importInto(theirs + "/work.sqlite", dir)
        #expect(result.status == 77, "stderr: \(result.stderr)")
        #expect(result.stderr.contains("directory") && result.stderr.contains("nobody"), "stderr: \(result.stderr)")
        #expect(access(theirs + "/work.sqlite", F_OK) != 0)
    }

    /// Only the path's last component must not be a link: a directory reached through one (a
    /// /var/lib that is a symlink, macOS's /tmp) is an ordinary set-up.
    @Test func aDatabaseInASymlinkedDirectoryIsAccepted() throws {
        let dir = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir.path + "/real", withIntermediateDirectories: false)
        #expect(symlink(dir.path + "/real", dir.path + "/linked") == 0)
        let db = dir.path + "/linked/work.sqlite"
        let imported = try Self.importInto(db, dir)
        #expect(imported.status == 0, "stderr: \(imported.stderr)")
        #expect(try CLI.run(["status", "--db", db]).status == 0)
        #expect(Self.mode(dir.path + "/real/work.sqlite") == 0o600)
    }

    @Test func aSymlinkAtTheDbPathIsRefusedEvenWhenItIsOurOwn() throws {
        let dir = try TemporaryDirectory()
        let real = dir.path + "/real.sqlite"
        #expect(try Self.importInto(real, dir).status == 0)
        let link = dir.path + "/link.sqlite"
        #expect(symlink(real, link) == 0)
        let refused = try Self.importInto(link, dir)
        #expect(refused.status == 77, "stderr: \(refused.stderr)")
        #expect(try Self.importInto(link, dir, ["--allow-shared-db"]).status == 0)
        #expect(try CLI.run(["status", "--db", real]).status == 0)
    }
}
