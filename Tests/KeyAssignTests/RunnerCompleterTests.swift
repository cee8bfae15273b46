import Dispatch
import Foundation
import Logging
import Testing

@testable import KeyAssign

/// `Completer` without polling: its flusher is woken by what it waits for (a result, a full
/// batch, the end), and a failed commit wakes whoever waits for the run's events. The waits
/// below are bounds that keep a broken completer from hanging the test, not durations.
@Suite struct RunnerCompleterTests {
    /// A database holding `count` imported rows, claimed by a run: what a completer records.
    private static func claimed(_ count: Int, in dir: TemporaryDirectory) throws -> (Database, Int64, [ClaimedRow]) {
        let path = dir.path + "/work.db"
        var csv = "license_key,owner_name,email\n"
        for i in 0..<count { csv += "K-\(i),Jane Doe \(i),jane\(i)@example.com\n" }
        try csv.write(toFile: dir.path + "/sales.csv", atomically: true, encoding: .utf8)
        let imported = try CLI.run(["import", "--db", path, dir.path + "/sales.csv"])
        #expect(imported.status == 0, "\(imported.stderr)")
        let db = try Database(path: path)
        let runID = try RunRecord.open(db, server: "test", logger: Logger(label: "test"))
        let rows = try WorkQueue(db).claim(runID: runID, limit: count, now: Timestamps.now())
        return (db, runID, rows)
    }

    private static func attempt(_ row: ClaimedRow) -> CompletedAttempt {
        let classification = Classifier.classify(
            .maybeSent("timeout"), verdict: nil, maybeDelivered: false, attempts: 1, maxAttempts: 5)
        return CompletedAttempt(
            row: row, classification: classification, nextAttemptAt: nil, startedAt: 0, endedAt: 0, latencyMS: 0,
            httpStatus: nil, reply: nil, signingKey: nil)
    }

    @Test("a full batch is committed when it fills, not when the interval ends (an hour here)")
    func aFullBatchGoesAtOnce() throws {
        let dir = try TemporaryDirectory()
        let (db, runID, rows) = try Self.claimed(2, in: dir)
        #expect(rows.count == 2)
        let completer = Completer(queue: SharedQueue(db), runID: runID, interval: 3600, batchSize: 2)
        completer.start()
        for row in rows { completer.add(Self.attempt(row)) }
        var committed = false
        for _ in 0..<3000 where !committed {
            committed = completer.recordedCount == 2
            if !committed { usleep(10_000) }
        }
        #expect(committed, "the full batch waited for the interval")
        try completer.finish()
        #expect(completer.recordedCount == 2)
    }

    @Test("a failed commit calls onFailure at once, so that the dispatcher stops without looking now and then")
    func aFailedCommitWakesTheDispatcher() throws {
        let dir = try TemporaryDirectory()
        let (db, runID, rows) = try Self.claimed(1, in: dir)
        // A commit that cannot succeed (the table it appends to is gone).
        try db.execute("DROP TABLE attempts")
        let woken = DispatchSemaphore(value: 0)
        let completer = Completer(queue: SharedQueue(db), runID: runID) {
            woken.signal()
        }
        completer.start()
        for row in rows { completer.add(Self.attempt(row)) }
        #expect(woken.wait(timeout: .now() + 60) == .success, "onFailure was not called")
        #expect(completer.error != nil)
        #expect(throws: DatabaseError.self) { try completer.finish() }
    }
}
