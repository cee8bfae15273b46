import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// `keyassign reconcile`, and the reconciliation `run` does by itself, through the real CLI
/// against the sandbox's signed key listing (issue 12).
@Suite struct ReconcileCLITests {
    /// Rows left `uncertain` the way a real run leaves them: the sandbox assigns each key,
    /// then hangs up; the next run's 801 is ambiguous. Reconciliation is off for these runs.
    static func uncertainBench(_ count: Int) throws -> RunnerBench {
        var drop = SandboxConfiguration.Faults()
        drop.dropAfter = 1
        let bench = try RunnerBench(inventory: count)
        try bench.restart(faults: drop)
        _ = try bench.run(["--no-reconcile", "--max-wait", "0", "--backoff-base", "0.3", "--backoff-cap", "0.3"])
        try bench.restart()
        Thread.sleep(forTimeInterval: 0.35)
        _ = try bench.run(["--no-reconcile"])
        #expect(try bench.stateCounts() == ["uncertain": count])
        return bench
    }

    @Test func uncertainRowsFromDroppedConnectionsAreSettledAssigned() throws {
        let bench = try Self.uncertainBench(4)
        let requestsBefore = bench.server.ledger().totals.requests

        let dry = try bench.reconcile(["--dry-run"])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("would uncertain -> assigned"))
        #expect(try bench.stateCounts() == ["uncertain": 4])
        #expect(try bench.count("SELECT count(*) FROM listings") == 0)

        let result = try bench.reconcile()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 4])
        #expect(
            result.stdout.split(separator: "\n").filter { $0.contains("uncertain -> assigned\theld_by_buyer") }.count
                == 4)
        // One listing, stored raw; each settled row points at it and at its own entry.
        #expect(try bench.count("SELECT count(*) FROM listings") == 1)
        #expect(
            try bench.count(
                "SELECT count(*) FROM settlements s JOIN work w ON w.id = s.work_id WHERE s.rule = 'held_by_buyer' AND s.entry LIKE '%' || w.license_key || '%' AND s.entry_index IS NOT NULL"
            ) == 4)
        // It sent no assign request: one listing request only.
        #expect(bench.server.ledger().totals.requests == requestsBefore)
        #expect(bench.server.ledger().listingRequests == 2)

        // audit re-verifies the listing and each settlement...
        let audit = try CLI.run(["audit", "--db", bench.db, "--public-key", bench.server.publicKeyPath])
        #expect(audit.status == 0, "\(audit.stdout)\(audit.stderr)")
        // ...and catches a settled row edited by hand, and a listing edited by hand.
        let key = bench.inventory[0]
        try bench.open().execute("UPDATE work SET state = 'rejected' WHERE license_key = '\(key)'")
        let edited = try CLI.run(["audit", "--db", bench.db, "--public-key", bench.server.publicKeyPath])
        #expect(edited.status == 1)
        #expect(edited.stdout.contains(key) && edited.stdout.contains("settlement"))
        try bench.open().execute("UPDATE work SET state = 'assigned' WHERE license_key = '\(key)'")
        #expect(try CLI.run(["audit", "--db", bench.db, "--public-key", bench.server.publicKeyPath]).status == 0)
        try bench.open().execute("UPDATE settlements SET entry = replace(entry, 'jane', 'john')")
        let quoted = try CLI.run(["audit", "--db", bench.db, "--public-key", bench.server.publicKeyPath])
        #expect(quoted.status == 1)
        #expect(quoted.stdout.contains("does not hold for this key"))
    }

    @Test func aRunSettlesWhatItLeftUncertain() throws {
        var drop = SandboxConfiguration.Faults()
        drop.dropAfter = 1
        let bench = try RunnerBench(inventory: 3)
        try bench.restart(faults: drop)
        _ = try bench.run(["--max-wait", "0", "--backoff-base", "0.3", "--backoff-cap", "0.3"])
        try bench.restart()
        Thread.sleep(forTimeInterval: 0.35)
        let result = try bench.run()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 3])
        // The rows the first run left maybe delivered are settled by the listing before
        // anything is sent: none is sent again.
        #expect(
            result.stderr.contains("reconciled uncertain and maybe-delivered rows left by earlier runs with listing"),
            "\(result.stderr)")
        #expect(bench.server.ledger().totals.requests == 0)
    }

    @Test func aKeyHeldByAnotherOwnerIsRejectedNamingThatOwner() throws {
        let bench = try RunnerBench(inventory: 3)
        let key = bench.inventory[1]
        try bench.server.preassign(key: key, ownerName: "Mallory Other", email: "mallory@other.example")
        let result = try bench.run()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 2, "rejected": 1])
        let reason = try bench.open().prepare("SELECT last_error FROM work WHERE license_key = '\(key)'")
        #expect(try reason.step())
        let text = reason.string(0) ?? ""
        #expect(text.contains("mallory@other.example") && text.contains("assigned_at 20"), "\(text)")

        let split = bench.dir.path + "/split"
        #expect(try CLI.run(["report", "--db", bench.db, "--split", split]).status == 0)
        let errors = try String(contentsOfFile: split + "/errors.csv", encoding: .utf8)
        #expect(errors.contains("mallory@other.example"))
        let history = try CLI.run(["history", "--db", bench.db, key])
        #expect(
            history.stdout.contains("mallory@other.example") && history.stdout.contains("held_by_other"),
            "\(history.stdout)")
        #expect(try CLI.run(["audit", "--db", bench.db, "--public-key", bench.server.publicKeyPath]).status == 0)
    }

    @Test func aKeyThisBuyerAlreadyHeldIsAssignedWhateverTheEmailsCase() throws {
        let bench = try RunnerBench(inventory: 2)
        let key = bench.inventory[0]
        // Sold earlier to the same buyer, recorded on the server with other case and spaces.
        try bench.server.preassign(key: key, ownerName: "Jane Doe", email: "  JANE0+Tag@Example.COM ")
        let result = try bench.run()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 2])
        #expect(
            try bench.count(
                "SELECT count(*) FROM settlements WHERE rule = 'held_by_buyer' AND from_state = 'rejected' AND to_state = 'assigned'"
            ) == 1)
        #expect(try CLI.run(["audit", "--db", bench.db, "--public-key", bench.server.publicKeyPath]).status == 0)
    }

    @Test func aKeyUnknownToTheServerIsExplained() throws {
        let bench = try RunnerBench(inventory: 1, unknown: 1)
        let result = try bench.run()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 1, "rejected": 1])
        #expect(
            try bench.count(
                "SELECT count(*) FROM work WHERE state = 'rejected' AND last_error LIKE 'unknown to the server%'") == 1)
        #expect(
            try bench.count("SELECT count(*) FROM settlements WHERE rule = 'unknown_key' AND entry_index IS NULL") == 1)
    }

    /// The race rule, and an available key going back to `retry`: a key the server did not
    /// know when it was sent, which it later lists as available.
    @Test func anAvailableKeyGoesBackToRetryOnlyOnceNoAttemptCanStillBeProcessed() throws {
        let bench = try RunnerBench(inventory: 1)
        let key = bench.inventory[0]
        var drop = SandboxConfiguration.Faults()
        drop.dropAfter = 1
        try bench.restart(faults: drop, inventory: [])
        _ = try bench.run([
            "--no-reconcile", "--max-wait", "0", "--backoff-base", "0.3", "--backoff-cap", "0.3", "--timeout", "4",
        ])
        #expect(try bench.stateCounts() == ["retry": 1])
        try bench.restart(inventory: [])
        Thread.sleep(forTimeInterval: 0.35)
        _ = try bench.run(["--no-reconcile", "--timeout", "4"])
        #expect(try bench.stateCounts() == ["uncertain": 1])
        try bench.restart(inventory: [key])

        // Within the last attempt's start + its --timeout (4 s, recorded by the run) the
        // listing proves nothing: the row waits, and reconcile says so (exit 1).
        let early = try bench.reconcile(["--timeout", "0.5"])
        #expect(early.status == 1, "\(early.stdout)\(early.stderr)")
        #expect(early.stdout.contains("too_early"))
        #expect(try bench.stateCounts() == ["uncertain": 1])

        // The listing counts as taken at its signed second, so past 4 s and that second.
        Thread.sleep(forTimeInterval: 5.2)
        let late = try bench.reconcile(["--timeout", "0.5"])
        #expect(late.status == 0, "\(late.stdout)\(late.stderr)")
        #expect(late.stdout.contains("uncertain -> retry\tavailable"))
        #expect(try bench.stateCounts() == ["retry": 1])
        #expect(try bench.run().status == 0)
        #expect(try bench.stateCounts() == ["assigned": 1])
    }

    /// A listing that fails signature verification changes nothing, and says what to check
    /// (issue 20, item 3: "the listing gets the same rule"): exit 78 naming --public-key and the
    /// key's fingerprint.
    @Test func aForgedListingChangesNothingAndExits78() throws {
        let bench = try Self.uncertainBench(2)
        try bench.restart(listing: .forged)
        let result = try bench.reconcile()
        #expect(result.status == 78)
        #expect(result.stderr.contains("bad_signature"), "\(result.stderr)")
        #expect(result.stderr.contains("--public-key") && result.stderr.contains("sha256:"), "\(result.stderr)")
        #expect(try bench.stateCounts() == ["uncertain": 2])
        #expect(try bench.count("SELECT count(*) FROM listings") == 0)
        #expect(try bench.count("SELECT count(*) FROM settlements") == 0)
        // In a run, before anything is sent, it stops the run the same way (exit 78).
        let run = try bench.run()
        #expect(run.status == 78, "\(run.stderr)")
        #expect(
            run.stderr.contains(
                "the key listing (GET /api/v1/get-license-keys) failed signature verification (bad_signature)"),
            "\(run.stderr)")
        #expect(run.stderr.contains("--public-key"), "\(run.stderr)")
        #expect(try bench.stateCounts() == ["uncertain": 2])
        #expect(try bench.count("SELECT count(*) FROM listings") == 0)
    }

    @Test func aServerWithoutTheListingLeavesTheRunAsItWas() throws {
        var drop = SandboxConfiguration.Faults()
        drop.dropAfter = 1
        let bench = try RunnerBench(inventory: 3)
        try bench.restart(faults: drop, listing: .absent)
        let first = try bench.run(["--max-wait", "0", "--backoff-base", "0.3", "--backoff-cap", "0.3"])
        #expect(first.status == 1)
        try bench.restart(listing: .absent)
        Thread.sleep(forTimeInterval: 0.35)
        let second = try bench.run()
        #expect(second.status == 1, "\(second.stderr)")
        #expect(try bench.stateCounts() == ["uncertain": 3])
        let warnings = second.stderr.split(separator: "\n").filter { $0.contains("has no key listing") }
        #expect(warnings.count == 1, "\(second.stderr)")
        #expect(try bench.count("SELECT count(*) FROM listings") == 0)
        #expect(try bench.reconcile().status == 1)

        // A listing over --max-listing-bytes is the same: one warning, nothing changed.
        try bench.restart()
        let small = try bench.run(["--max-listing-bytes", "1024"])
        #expect(small.status == 0, "nothing to send, as before: \(small.stderr)")
        #expect(
            small.stderr.split(separator: "\n").filter { $0.contains("larger than --max-listing-bytes") }.count == 1)
        #expect(try bench.stateCounts() == ["uncertain": 3])
    }

    @Test func rowsRecoveredFromADeadRunAreCheckedBeforeAnyResend() throws {
        let bench = try RunnerBench(inventory: 3)
        let keys = bench.inventory
        // As if run 99 had sent two rows and died; the server had assigned the first to this buyer.
        try bench.server.preassign(key: keys[0], ownerName: "Doe, Jane 0", email: "jane0+tag@example.com")
        try bench.open().execute(
            """
            UPDATE work SET state = 'in_flight', run_id = 99, attempts = 1, in_flight_since = '2026-01-01T00:00:00.000Z'
            WHERE license_key IN ('\(keys[0])', '\(keys[1])')
            """)
        let result = try bench.run()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 3])
        // Not sent again: the listing proved it.
        #expect(bench.server.ledger().keys[keys[0]]?.requests ?? 0 == 0)
        #expect(bench.server.ledger().keys[keys[1]]?.requests == 1)
        #expect(
            try bench.count("SELECT count(*) FROM settlements WHERE rule = 'held_by_buyer' AND from_state = 'retry'")
                == 1)
        #expect(try CLI.run(["audit", "--db", bench.db, "--public-key", bench.server.publicKeyPath]).status == 0)
    }
}
