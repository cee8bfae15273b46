import CSQLite
import Foundation
import Testing

@testable import KeyAssign

/// `Database.inTransaction`: what the body returns decides, a thrown error rolls back, and the
/// connection is out of the transaction afterwards either way. Checked on a real file, read
/// back through a second connection so that only committed rows are seen.
@Suite struct DatabaseTransactionTests {
    let dir: TemporaryDirectory
    let path: String
    let db: Database

    struct Refusal: Error, Equatable {}

    init() throws {
        dir = try TemporaryDirectory()
        path = dir.path + "/t.sqlite"
        db = try Database(path: path)
        try db.execute("CREATE TABLE t (value TEXT NOT NULL UNIQUE)")
    }

    /// Rows committed, as another connection sees them.
    func committed() throws -> Int64 {
        try Database(path: path, create: false).scalarInt("SELECT count(*) FROM t") ?? -1
    }

    func insert(_ value: String) throws {
        let statement = try db.prepare("INSERT INTO t (value) VALUES (?1)")
        try statement.bind(1, value)
        try statement.step()
    }

    var inTransaction: Bool { sqlite3_get_autocommit(db.handle) == 0 }

    @Test func commitKeepsTheWork() throws {
        try db.inTransaction {
            try insert("a")
            try insert("b")
            #expect(inTransaction)
            return .commit
        }
        #expect(!inTransaction)
        #expect(try committed() == 2)
    }

    @Test func rollbackUndoesTheWorkWithoutAnError() throws {
        try db.inTransaction {
            try insert("a")
            // Inside, the work is there (a dry run counts it before it is undone).
            #expect(try db.scalarInt("SELECT count(*) FROM t") == 1)
            return .rollback
        }
        #expect(!inTransaction)
        #expect(try committed() == 0)
        #expect(try db.scalarInt("SELECT count(*) FROM t") == 0)
    }

    @Test func aThrownErrorRollsBackAndIsRethrownAsItIs() throws {
        #expect(throws: Refusal()) {
            try db.inTransaction {
                try insert("a")
                throw Refusal()
            }
        }
        #expect(!inTransaction)
        #expect(try committed() == 0)
    }

    @Test func aDatabaseErrorInsideRollsBackTheWholeTransaction() throws {
        let error = try #require(throws: DatabaseError.self) {
            try db.inTransaction {
                try insert("a")
                try insert("a")  // UNIQUE
                return .commit
            }
        }
        #expect(error.primaryCode == SQLITE_CONSTRAINT)
        #expect(!inTransaction)
        #expect(try committed() == 0)
        // The connection is usable again: a next transaction starts and commits.
        try db.inTransaction {
            try insert("a")
            return .commit
        }
        #expect(try committed() == 1)
    }

    @Test func immediateTakesTheWriteLockAtBegin() throws {
        let other = try Database(path: path, create: false)
        other.setBusyTimeout(seconds: 0)
        try db.inTransaction(.immediate) {
            // Nothing written yet, and another writer is already kept out.
            let error = try #require(throws: DatabaseError.self) { try other.execute("BEGIN IMMEDIATE") }
            #expect(error.primaryCode == SQLITE_BUSY)
            return .rollback
        }
        try other.execute("BEGIN IMMEDIATE")
        try other.execute("ROLLBACK")
    }

    @Test func transactionReturnsTheBodysValue() throws {
        let count = try db.transaction {
            try insert("a")
            return try db.scalarInt("SELECT count(*) FROM t")
        }
        #expect(count == 1)
        #expect(try committed() == 1)
    }

    /// The failed statement travels with the error, as written: its placeholders, never the
    /// values bound to them (customers' names and emails).
    @Test func aDatabaseErrorCarriesItsSQLButNotTheBoundValues() throws {
        try insert("ada@example.com")
        let error = try #require(throws: DatabaseError.self) { try insert("ada@example.com") }
        #expect(error.sql == "INSERT INTO t (value) VALUES (?1)")
        #expect(error.description.contains("while executing `INSERT INTO t (value) VALUES (?1)`"))
        #expect(!error.description.contains("ada@"))
        #expect(!error.debugDescription.contains("ada@"))

        let prepared = try #require(throws: DatabaseError.self) { try db.prepare("SELECT nope FROM t") }
        #expect(prepared.sql == "SELECT nope FROM t")
        let executed = try #require(throws: DatabaseError.self) { try db.execute("DELETE FROM missing") }
        #expect(executed.sql == "DELETE FROM missing")
    }

    /// A cause the person can act on keeps its message as it was; the statement is in the
    /// debug description only.
    @Test func actionableMessagesStayAsTheyWere() throws {
        let busy = DatabaseError(
            code: SQLITE_BUSY, message: "database is locked", path: "/x/k.sqlite",
            sql: "BEGIN IMMEDIATE")
        #expect(
            busy.description == "database /x/k.sqlite is busy (database is locked); another process holds a write lock")
        #expect(busy.debugDescription == busy.description + ", while executing `BEGIN IMMEDIATE`")
        #expect(ExitStatus(for: busy) == .ioError)
        // Callers written before `sql` existed still compile and read the same.
        let old = DatabaseError(code: SQLITE_CORRUPT, message: "malformed", path: "/x/k.sqlite")
        #expect(old.description == "database /x/k.sqlite is damaged (malformed); restore it from a backup")
        #expect(old.debugDescription == old.description)
    }

    @Test func openErrorsKeepTheirStatusAndMessage() throws {
        let missing = dir.path + "/missing.sqlite"
        let error = try #require(throws: DatabaseOpenError.self) { try Database(path: missing, create: false) }
        #expect(ExitStatus(for: error) == .dataError)
        #expect(error.description == "no database at \(missing) (import some CSV files first, or pass --db)")
        let unopenable = dir.path + "/no/such/dir/k.sqlite"
        let failed = try #require(throws: DatabaseOpenError.self) { try Database(path: unopenable) }
        #expect(ExitStatus(for: failed) == .ioError)
        #expect(failed.description.hasPrefix("cannot open database \(unopenable): "))
    }
}
