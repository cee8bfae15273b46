import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

@Suite struct RunnerQueueTests {
    /// The claim must come from the `work_due` index: a table scan per claim makes a run
    /// quadratic in the queue's size.
    /// The very statements `WorkQueue` runs on due rows: both branches of the claim, the
    /// next-due query, the rescue and the counts read `work_due`, and none scans `work`.
    @Test func claimsUseTheDueIndex() throws {
        let dir = try TemporaryDirectory()
        let db = try Database(path: dir.path + "/q.sqlite")
        func plan(_ sql: String) throws -> [String] {
            let statement = try db.prepare("EXPLAIN QUERY PLAN " + sql)
            var details: [String] = []
            while try statement.step() { details.append(statement.string(3) ?? "") }
            return details
        }
        let claim = try plan(WorkQueue.claimSQL)
        #expect(claim.filter { $0.contains("INDEX work_due") }.count >= 2, "\(claim)")
        #expect(!claim.contains { $0.hasPrefix("SCAN work") }, "\(claim)")
        for sql in [
            WorkQueue.nextDueSQL, WorkQueue.inFlightSQL, WorkQueue.rescueSQL, WorkQueue.toSendSQL,
            WorkQueue.queuedByStateSQL, "SELECT id FROM work WHERE " + WorkQueue.rescuedRetries,
        ] {
            let steps = try plan(sql)
            #expect(steps.contains { $0.contains("work_due") }, "\(sql): \(steps)")
            // A scan of the partial index reads only rows with work; a scan of `work` reads them all.
            #expect(!steps.contains { $0.hasPrefix("SCAN work") && !$0.contains("INDEX work_due") }, "\(sql): \(steps)")
        }
    }
}
