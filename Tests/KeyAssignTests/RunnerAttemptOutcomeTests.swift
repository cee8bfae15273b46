import Foundation
import Testing

@testable import KeyAssign

/// `attempts.outcome` is part of the interface: docs/states.md lists exactly `AttemptOutcome`.
@Suite struct RunnerAttemptOutcomeTests {
    /// The first column of the table under "## Attempt outcomes", in order.
    static func documentedOutcomes() throws -> [String] {
        // This file is Tests/<target>/RunnerAttemptOutcomeTests.swift.
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/states.md")
        let text = try String(contentsOf: url, encoding: .utf8)
        let section = try #require(text.components(separatedBy: "\n## Attempt outcomes\n").dropFirst().first)
        let body = section.components(separatedBy: "\n## ").first ?? ""
        return body.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("| `") else { return nil }
            let cell = line.dropFirst(3)
            return cell.firstIndex(of: "`").map { String(cell[..<$0]) }
        }
    }

    @Test func statesDocListsEveryOutcomeInOrder() throws {
        #expect(try Self.documentedOutcomes() == AttemptOutcome.allCases.map(\.rawValue))
    }

    /// The stored text never changes: rows written by earlier versions must still read.
    @Test func rawValuesAreTheStoredText() {
        #expect(
            AttemptOutcome.allCases.map(\.rawValue) == [
                "assigned", "rejected", "uncertain", "failed", "retry", "rate_limited", "not_sent", "auth_stop",
                "config_stop", "interrupted",
            ])
    }
}
