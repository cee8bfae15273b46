import Foundation
import Testing

@testable import KeyAssign

/// Bounded, seeded fuzzing of the two places where outside bytes enter keyassign: exports
/// (mutations of the real samples, not just random bytes, so the mutants stay close to what
/// the importer's validation and mapping must handle) and server replies (mutations of real
/// sandbox replies, pushed through the verifier and the runner's decision table together).
/// A failing round prints its number; the seed makes it reproducible.
@Suite struct FuzzReplyAndImportTests {
    /// Edits that matter to a CSV reader: quotes, delimiters, line ends, a BOM, NULs,
    /// broken UTF-8, and pieces of other lines.
    static func mutate(_ original: [UInt8], donor: [UInt8], using random: inout SeededGenerator) -> [UInt8] {
        var bytes = original
        let tokens: [[UInt8]] = [
            [0x22], [0x2C], [0x3B], [0x09], [0x0D], [0x0A], [0x0D, 0x0A], [0x22, 0x22],
            [0xEF, 0xBB, 0xBF], [0x00], [0xC3], [0xFF], Array("sep=;\n".utf8), [0x20],
        ]
        for _ in 0..<Int.random(in: 1...8, using: &random) {
            let at = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &random)
            switch Int.random(in: 0..<7, using: &random) {
            case 0 where !bytes.isEmpty: bytes[at] ^= UInt8(1 << Int.random(in: 0..<8, using: &random))
            case 1 where !bytes.isEmpty: bytes.remove(at: at)
            case 2: bytes.insert(contentsOf: tokens.randomElement(using: &random) ?? [], at: at)
            case 3 where !bytes.isEmpty: bytes = Array(bytes[..<at])
            case 4 where !donor.isEmpty:
                let from = Int.random(in: 0..<donor.count, using: &random)
                let end = min(donor.count, from + Int.random(in: 1...120, using: &random))
                bytes.insert(contentsOf: donor[from..<end], at: at)
            case 5 where !bytes.isEmpty:
                let end = min(bytes.count, at + Int.random(in: 1...200, using: &random))
                bytes.insert(contentsOf: bytes[at..<end], at: Int.random(in: 0...bytes.count, using: &random))
            default: bytes.insert(UInt8.random(in: 0...255, using: &random), at: at)
            }
        }
        return bytes
    }

    @Test func mutatedSampleExportsNeverCrashTheImporterAndKeepItsCounts() throws {
        var random = SeededGenerator(state: 0x5EED_1006)
        let names = ["shop-export.csv", "crm-export.csv", "eu-export.csv"]
        let samples = try names.map { Array(try Data(contentsOf: URL(fileURLWithPath: CLI.samples + "/" + $0))) }
        let dir = try TemporaryDirectory()
        let db = try Database(path: dir.path + "/fuzz.sqlite")
        var queuedTotal: Int64 = 0
        var invalidTotal: Int64 = 0
        var imported = 0
        var readTotal = 0
        var accounted = 0
        for round in 0..<240 {
            let which = round % samples.count
            let bytes = Self.mutate(samples[which], donor: samples[(which + 1) % samples.count], using: &random)
            let path = dir.path + "/mutant-\(round)-\(names[which])"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let outcome = ImportJob.run(
                [path], options: ImportOptions(databasePath: db.path, lockWait: ImportFixture.lockWait), into: db,
                output: { _ in })
            #expect(
                outcome.exitStatus == .ok || outcome.exitStatus == .dataError, "round \(round): \(outcome.exitStatus)")
            if outcome.exitStatus == .ok { imported += 1 }
            queuedTotal += Int64(outcome.queued)
            readTotal += outcome.rowsRead
            accounted += outcome.queued + outcome.duplicates + outcome.conflicts + outcome.invalid
            // Conflicting duplicates are kept in invalid_rows too, with their reason.
            invalidTotal += Int64(outcome.invalid + outcome.conflicts)
            #expect(
                try db.scalarInt("SELECT count(*) FROM work") == queuedTotal,
                "round \(round): queued rows and work rows differ")
            #expect(
                try db.scalarInt("SELECT count(*) FROM invalid_rows") == invalidTotal,
                "round \(round): invalid + conflict counts and invalid_rows differ")
        }
        // The mutants must mostly still be importable, or this would only fuzz the "no key column" path.
        #expect(imported > 120, "only \(imported) of 240 mutants were imported")
        #expect(queuedTotal > 0 && invalidTotal > 0)
        // Every row read is queued, a duplicate, a conflict or invalid: none vanishes.
        #expect(readTotal == accounted, "\(readTotal) rows read, \(accounted) accounted for")
        #expect(
            try db.scalarInt(
                """
                SELECT count(*) FROM work WHERE license_key = '' OR license_key <> trim(license_key)
                    OR state <> 'pending' OR idempotency_token = ''
                """) == 0)
        let check = try db.prepare("PRAGMA integrity_check")
        #expect(try check.step())
        #expect(check.string(0) == "ok")
    }

    /// Real replies from a real sandbox: 800, 801, a signed 100 under HTTP 401.
    static func realReplies() async throws -> (sandbox: RunningSandbox, replies: [(status: Int, body: [UInt8])]) {
        let sandbox = try RunningSandbox(keys: ["FUZZ-KEY-1"])
        let key = sandbox.server.apiKey
        func assign(_ apiKey: String) async throws -> (status: Int, body: [UInt8]) {
            let reply = try await SandboxHTTP.post(
                sandbox.assignURL,
                form: [("api_key", apiKey), ("license_key", "FUZZ-KEY-1"), ("owner_name", "Jane Doe")],
                headers: ["Authorization": "Bearer \(apiKey)"])
            return (reply.status, reply.body)
        }
        return (
            sandbox,
            [try await assign(key), try await assign(key), try await assign("00000000-0000-0000-0000-000000000000")]
        )
    }

    @Test func mutatedSandboxRepliesNeverCrashOrMisclassify() async throws {
        let (sandbox, replies) = try await Self.realReplies()
        var originals: [Int: SignedPayload] = [:]
        for reply in replies {
            guard case .trusted(let payload) = sandbox.verifier.verify(reply.body, maxAge: nil) else {
                Issue.record("the sandbox's own reply does not verify: \(String(decoding: reply.body, as: UTF8.self))")
                return
            }
            originals[payload.code] = payload
        }
        #expect(Set(originals.keys) == [800, 801, 100])
        #expect(replies.map(\.status) == [200, 200, 401])

        var random = SeededGenerator(state: 0x5EED_1007)
        let alphabet = Array(#"{}[]":,\/0123456789.eE+-tfnulrsa=ABCXYZ "#.utf8)
        let statuses = [200, 200, 200, 201, 204, 302, 400, 401, 403, 404, 429, 500, 502, 503]
        var outcomes: [String: Int] = [:]
        for round in 0..<6000 {
            let original = replies[round % replies.count]
            var body = original.body
            if round % 7 != 0 {
                for _ in 0..<Int.random(in: 1...4, using: &random) where !body.isEmpty {
                    let at = Int.random(in: 0..<body.count, using: &random)
                    switch Int.random(in: 0..<5, using: &random) {
                    case 0: body[at] ^= UInt8(1 << Int.random(in: 0..<8, using: &random))
                    case 1: body.remove(at: at)
                    case 2: body.insert(alphabet.randomElement(using: &random) ?? 0x20, at: at)
                    case 3: body = Array(body[..<at])
                    default: body[at] = UInt8.random(in: 0...255, using: &random)
                    }
                }
            }
            // Every seventh round keeps the body intact under a random status: a genuine
            // signature on the wrong kind of response must still be classified safely.
            let status = round % 7 == 0 ? statuses.randomElement(using: &random) ?? 200 : original.status
            let maybeDelivered = Bool.random(using: &random)
            let attempts = Int.random(in: 1...5, using: &random)
            let header: String? =
                [
                    nil, "1", "-3", "1e308", "nan", "Sun, 06 Nov 1994 08:49:37 GMT",
                    String(decoding: body.prefix(12), as: UTF8.self),
                ]
                .randomElement(using: &random) ?? nil

            let verdict = sandbox.verifier.verify(body, maxAge: nil)
            let result = TransportResult.response(status: status, retryAfter: header, body: body)
            let got = Classifier.classify(
                result, verdict: verdict, maybeDelivered: maybeDelivered, attempts: attempts, maxAttempts: 5)
            outcomes[got.outcome.rawValue, default: 0] += 1
            let context = "round \(round): HTTP \(status), \(verdict), maybe \(maybeDelivered) → \(got.outcome)"

            var trustedCode: Int?
            if case .trusted(let payload) = verdict {
                trustedCode = payload.code
                // A mutation may keep a reply valid (whitespace); it may never change what it says.
                #expect(
                    originals[payload.code] == payload, "\(context): a mutated reply verified with a different payload")
            }
            switch got.state {
            case .assigned:
                #expect(trustedCode == 800 && (200...299).contains(status), "\(context)")
            case .rejected:
                #expect(trustedCode == 801 && !maybeDelivered && (200...299).contains(status), "\(context)")
            case .uncertain:
                // An ambiguous 801, or (issue 18) a failure of a row that may have been delivered:
                // never on the strength of a verified code other than 801.
                #expect(
                    (trustedCode == 801 && maybeDelivered)
                        || (got.code == nil && got.maybeDelivered && (maybeDelivered || attempts >= 5)), "\(context)")
            case .failed:
                // Maybe delivered is never failed on its own: only a verified code says so.
                #expect(got.code != nil || !got.maybeDelivered, "\(context)")
            case .pending:
                // Back to pending only when nothing was done: a signed refusal (the run stops) or a 429.
                #expect(
                    (got.authStop != nil && trustedCode.map(Classifier.authCodes.contains) == true)
                        || (got.rateLimited && status == 429), "\(context)")
                #expect(!got.countsAttempt, "\(context)")
            case .retry, .inFlight:
                #expect(got.state != .inFlight, "\(context)")
            }
            // What may have reached the server is never forgotten.
            #expect(got.maybeDelivered || !maybeDelivered, "\(context)")
            if (200...299).contains(status) && trustedCode == nil {
                #expect(got.state == .retry || got.state == .uncertain, "\(context)")
                #expect(got.maybeDelivered, "\(context): an unverified 2xx may have been processed")
            }
            // An unsigned refusal is the row's own problem (the runner's RefusalGate may still
            // make it the run's).
            if (status == 401 || status == 403) && trustedCode == nil {
                #expect(got.unsignedRefusal && [.retry, .failed, .uncertain].contains(got.state), "\(context)")
            }
            // A verified reply that says neither 800 nor 801 under a 2xx may have been acted on.
            if let code = trustedCode, status != 429, !Classifier.authCodes.contains(code),
                !((200...299).contains(status) && (code == 800 || code == 801))
            {
                #expect(got.maybeDelivered, "\(context): the license server answered")
            }
            if let seconds = RetryAfter.seconds(header: header, body: body, now: 1_800_000_000) {
                #expect(
                    seconds.isFinite && seconds >= 0,
                    "\(context): Retry-After \(String(describing: header)) → \(seconds)")
            }
        }
        // The run must have reached every branch that matters, or it proves little.
        for outcome in ["assigned", "rejected", "uncertain", "retry", "failed", "rate_limited", "auth_stop"] {
            #expect((outcomes[outcome] ?? 0) > 0, "no round ended \(outcome): \(outcomes)")
        }
    }
}
