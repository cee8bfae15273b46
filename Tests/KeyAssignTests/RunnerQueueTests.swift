import Foundation
import Testing
@testable import KeyAssign
@testable import KeyAssignSandbox

@Suite struct RunnerQueueTests {
    /// The claim must come from the `work_due` index: a table scan per claim makes a run
    /// quadratic in the queue's size.
    /// The very statements `Claimer` prepares: both branches of the claim and the next-due
    /// query read `work_due`, and none scans `work`.
    @Test func claimsUseTheDueIndex() throws {
        let dir = try TemporaryDirectory()
        let db = try Database(path: dir.path + "/q.sqlite")
        func plan(_ sql: String) throws -> [String] {
            let statement = try db.prepare("EXPLAIN QUERY PLAN " + sql)
            var details: [String] = []
            while try statement.step() { details.append(statement.string(3) ?? "") }
            return details
        }
        let claim = try plan(Claimer.claimSQL)
        #expect(claim.filter { $0.contains("INDEX work_due") }.count >= 2, "\(claim)")
        #expect(!claim.contains { $0.hasPrefix("SCAN work") }, "\(claim)")
        let nextDue = try plan(Claimer.nextDueSQL)
        #expect(nextDue.contains { $0.contains("work_due") }, "\(nextDue)")
        #expect(!nextDue.contains { $0.hasPrefix("SCAN work") }, "\(nextDue)")
    }
}
