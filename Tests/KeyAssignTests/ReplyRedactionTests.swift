import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// Issue 11, item 4: a server whose error page echoes the request (the API key with it) must
/// not put the key into the database, the logs or the reports.
@Suite struct ReplyRedactionTests {
    /// A key with a distinctive core and every character the encodings treat specially.
    static let apiKey = #"Sk9fQ2xLw7Rt4ZpMv/+&="%<>'\é-end"#
    static let core = "Sk9fQ2xLw7Rt4ZpMv"

    /// The key as the echo page and other servers may spell it.
    static var spellings: [String] {
        var form: [UInt8] = []
        RequestBodyBuilder.appendFormEncoded(apiKey, to: &form)
        return [
            apiKey,
            String(decoding: form, as: UTF8.self),
            SignedReplyMaker.jsonString(apiKey).dropFirst().dropLast().description,
            SandboxDebugPage.escapeHTML(apiKey),
        ]
    }

    @Test func echoedErrorPagesNeverPutTheKeyIntoTheDatabaseOrOutput() throws {
        var faults = SandboxConfiguration.Faults()
        faults.echoError = 0.5
        faults.seed = 4
        let bench = try RunnerBench(inventory: 16, faults: faults, apiKey: Self.apiKey)
        let result = try bench.run(["--max-attempts", "30"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(try bench.stateCounts() == ["assigned": 16])
        let echoed = bench.server.ledger().faults.echoError
        #expect(echoed >= 5, "echo pages sent: \(echoed)")
        // Each echo page was recorded: its top, redacted, and a note with its size and digest.
        #expect(
            try bench.count("SELECT count(*) FROM attempts WHERE http_status = 500 AND outcome = 'retry'") == echoed)
        #expect(
            try bench.count(
                """
                SELECT count(*) FROM attempts WHERE http_status = 500
                   AND instr(CAST(reply AS TEXT), '500 | Server Error') > 0
                   AND instr(CAST(reply AS TEXT), '[REDACTED: API key]') > 0
                   AND instr(CAST(reply AS TEXT), '[keyassign: not a reply envelope;') > 0
                """) == echoed)
        // Signed envelopes are kept whole, byte for byte, for audit.
        let audit = try CLI.run(["audit", "--db", bench.db, "--public-key", bench.server.publicKeyPath])
        #expect(audit.status == 0, "\(audit.stdout)\(audit.stderr)")

        let history = try CLI.run(["history", "--db", bench.db, bench.inventory[0]])
        let report = try CLI.run(["report", "--db", bench.db, "--format", "jsonl"])
        var texts = [
            ("run stdout", result.stdout), ("run stderr", result.stderr),
            ("history", history.stdout + history.stderr), ("report", report.stdout + report.stderr),
        ]
        let files = try FileManager.default.contentsOfDirectory(atPath: bench.dir.path)
            .filter { $0.hasPrefix("work.sqlite") }
        #expect(files.contains("work.sqlite"))
        for file in files {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: bench.dir.path + "/" + file))
            texts.append((file, String(decoding: bytes, as: UTF8.self)))
        }
        for (name, text) in texts {
            // Computed apart, so that a failure names the file, not megabytes of it.
            let holdsCore = text.range(of: Self.core, options: .caseInsensitive) != nil
            #expect(!holdsCore, "\(name) holds the API key")
            for spelling in Self.spellings {
                let holds = text.contains(spelling)
                #expect(!holds, "\(name) holds the API key as \(spelling)")
            }
        }
    }

    @Test func everySpellingOfTheKeyIsFound() throws {
        let redactor = try #require(SecretRedactor(secret: Self.apiKey))
        let marker = String(decoding: SecretRedactor.marker, as: UTF8.self)
        var spellings = Self.spellings
        spellings += [
            // ASCII letters upper-cased (a hex-looking key may be); é has no ASCII case.
            String(Self.apiKey.map { $0.isASCII ? Character($0.uppercased()) : $0 }),
            // Lower-case percent-encoding, JSON \u escapes, numeric references, mixed.
            String(decoding: Self.spellings[1].utf8, as: UTF8.self).lowercased(),
            #"Sk9fQ2xLw7Rt4ZpMv\u002f+\u0026=\u0022%\u003c>'\\\u00E9-end"#,
            "Sk9fQ2xLw7Rt4ZpMv&#47;&#x2B;&amp;=&#34;&#37;&LT;&gt;&#039;&#92;&#233;-end",
            // Escaped twice: form-encoded then URL-encoded again, and JSON inside HTML.
            "Sk9fQ2xLw7Rt4ZpMv%252F%252B%2526%253D%2522%2525%253C%253E%2527%255C%25C3%25A9-end",
            #"Sk9fQ2xLw7Rt4ZpMv\/+&amp;=\&quot;%&lt;&gt;&#039;\\\u00e9-end"#,
        ]
        for spelling in spellings {
            let text = "<td>before " + spelling + " after</td>"
            let redacted = redactor.redact(text)
            #expect(redacted == "<td>before \(marker) after</td>", "\(spelling) → \(redacted)")
        }
        // Twice in one text, back to back.
        #expect(redactor.redact(Self.apiKey + Self.apiKey) == marker + marker)
        // Nothing else is touched: almost the key, or the key's core alone.
        for text in [String(Self.apiKey.dropLast()), Self.core, "Sk9fQ2xLw7Rt4ZpMv/+&=\"%<>'\\e-end"] {
            #expect(redactor.redact(text) == text, "\(text)")
        }
        #expect(SecretRedactor(secret: "") == nil)
        // A secret that starts with a multi-byte character, or is one character long.
        let accented = try #require(SecretRedactor(secret: "é/k"))
        #expect(accented.redact(#"x é/k y %C3%A9%2Fk \u00e9\/K"#) == "x \(marker) y \(marker) \(marker)")
        let single = try #require(SecretRedactor(secret: "/"))
        #expect(single.redact(#"a/b\/c"#) == "a\(marker)b\(marker)c")
    }

    @Test func envelopesAreStoredWholeAndOtherBodiesAsARedactedPrefix() throws {
        let redaction = ReplyRedaction(apiKey: Self.apiKey)
        // A signed envelope, escaped slashes and all, is stored byte for byte.
        let envelope = try EnvelopeBuilder().bytes()
        let verdict = ReplyVerifier(keyRing: try TestKeys.ring()).verify(envelope)
        #expect(redaction.stored(envelope, verdict: verdict) == envelope)
        // Unverified (a 5xx) but envelope-shaped: whole too.
        #expect(redaction.stored(envelope, verdict: nil) == envelope)
        // Small text: whole, redacted.
        let small = Array("Bad Gateway for api_key=\(Self.apiKey)".utf8)
        #expect(redaction.stored(small, verdict: nil) == Array("Bad Gateway for api_key=[REDACTED: API key]".utf8))
        // A large page: its first 2 KiB, redacted, and a note; the key past the cut is gone too.
        let page = Array(("<h1>Whoops</h1>" + String(repeating: "x", count: 3000) + "Bearer " + Self.apiKey).utf8)
        let stored = try #require(redaction.stored(page, verdict: .untrusted(.envelopeNotJSON, "not JSON")))
        let text = String(decoding: stored, as: UTF8.self)
        #expect(text.hasPrefix("<h1>Whoops</h1>xxx"))
        #expect(text.contains("[keyassign: not a reply envelope; \(page.count) bytes in all, the first 2048 kept"))
        #expect(!text.contains(Self.core))
        #expect(stored.count < 2300)
        // Texts built from replies lose the key too.
        let classified = Classification(
            state: .pending, outcome: .authStop, maybeDelivered: false, countsAttempt: false,
            code: 100, verdictText: "trusted", error: "refused: \(Self.apiKey)",
            authStop: "refused: \(Self.apiKey)")
        let cleaned = redaction.classification(classified)
        #expect(cleaned.error == "refused: [REDACTED: API key]" && cleaned.authStop == cleaned.error)
    }
}
