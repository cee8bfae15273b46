import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

/// `keyassign report --html` on databases filled by the real `import` and `run` against the
/// sandbox, with hostile names in the export.
@Suite struct HTMLReportCLITests {
    static let names = ["<script>alert(1)</script>", "</svg><img src=x onerror=alert(2)>", "O'Brien, \"JJ\" & Co"]

    @Test func writesOnePrivateSelfContainedPageWithEveryPart() throws {
        // Run 1: three keys the server does not know (refused); run 2: two keys that fail.
        let bench = try RunnerBench(inventory: 0)
        var csv = "license_key,owner_name,email\n"
        var refusedKeys: [String] = []
        for name in Self.names {
            let key = UUID().uuidString.lowercased()
            refusedKeys.append(key)
            csv += "\(key),\"\(name.replacingOccurrences(of: "\"", with: "\"\""))\",owner@example.com\n"
        }
        csv += ",<b>no key</b>,nobody@example.com\n"
        let hostileFile = bench.dir.path + "/shop<i>&'.csv"
        try csv.write(toFile: hostileFile, atomically: true, encoding: .utf8)
        #expect(try CLI.run(["import", "--db", bench.db, hostileFile]).status == 0)
        #expect(try bench.run().status == 0)
        let failing = [UUID().uuidString.lowercased(), UUID().uuidString.lowercased()]
        try bench.importRows(failing, file: "later.csv")
        // A verified undocumented code: failed for good (a 5xx would leave them uncertain now).
        var faults = SandboxConfiguration.Faults()
        faults.undocumentedCode = 1
        try bench.restart(faults: faults)
        #expect(try bench.run(["--max-attempts", "1"]).status == 1)
        #expect(try bench.stateCounts() == ["rejected": 3, "failed": 2])

        let page = bench.dir.path + "/night.html"
        let result = try CLI.run(["report", "--db", bench.db, "--html", page])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.isEmpty)
        var info = stat()
        #expect(lstat(page, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(info.st_mode & S_IFMT == S_IFREG)
        let html = try String(contentsOfFile: page, encoding: .utf8)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: bench.dir.path).filter {
            $0.contains(".tmp-")
        }
        #expect(leftovers.isEmpty)

        // Escaped: no tag from the data, no script at all.
        let tags = Set(HTMLReportTests.tags(html))
        #expect(tags.isSubset(of: HTMLReportTests.allowedTags), "\(tags.subtracting(HTMLReportTests.allowedTags))")
        for markup in ["<script", "<img", "<i>", "<b>"] { #expect(!html.contains(markup), "\(markup)") }
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(html.contains("&lt;/svg&gt;&lt;img src=x onerror=alert(2)&gt;"))
        #expect(html.contains("O&#39;Brien, &quot;JJ&quot; &amp; Co"))
        #expect(html.contains("shop&lt;i&gt;&amp;&#39;.csv"))

        // The chart: one bar per run, segments as the attempts table counts them.
        #expect(html.components(separatedBy: "<svg").count == 2)
        #expect(html.contains("<g class=\"bar\" data-run=\"1\" data-attempts=\"3\">"))
        #expect(html.contains("data-outcome=\"rejected\" data-count=\"3\""))
        #expect(html.contains("<g class=\"bar\" data-run=\"2\" data-attempts=\"2\">"))
        #expect(html.contains("data-outcome=\"failed\" data-count=\"2\""))

        // Needs a person: the two failed rows and the invalid input row, each with a command.
        #expect(html.contains("Needs a person (3)"))
        for key in failing {
            #expect(html.contains("keyassign retry --db \(bench.db) --key=\(key)"))
        }
        #expect(html.contains("invalid input: "))
        #expect(
            html.contains(
                "keyassign import --db \(bench.db) &#39;\(bench.dir.path)/shop&lt;i&gt;&amp;&#39;\\&#39;&#39;.csv&#39;")
        )
        // Refused: every key, the reason, and the owner column from the run's reconciliation.
        #expect(html.contains("Refused keys (3)"))
        for key in refusedKeys { #expect(html.contains("<code>\(key)</code>")) }
        #expect(html.components(separatedBy: "<td class=\"owner\">unknown to the server (listing 1)</td>").count == 4)
        // A table per source file.
        #expect(html.contains("<h3><code>\(bench.dir.path)/later.csv</code></h3>"))
        #expect(html.contains("<h3><code>\(bench.dir.path)/shop&lt;i&gt;&amp;&#39;.csv</code></h3>"))
    }

    @Test func replacesASymlinkInsteadOfWritingThroughIt() throws {
        let bench = try RunnerBench(inventory: 1)
        let victim = bench.dir.path + "/victim.txt"
        try "keep me".write(toFile: victim, atomically: true, encoding: .utf8)
        let page = bench.dir.path + "/night.html"
        #expect(symlink(victim, page) == 0)
        let result = try CLI.run(["report", "--db", bench.db, "--html", page])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep me")
        var info = stat()
        #expect(lstat(page, &info) == 0 && info.st_mode & S_IFMT == S_IFREG && info.st_mode & 0o777 == 0o600)
        #expect(try String(contentsOfFile: page, encoding: .utf8).contains("No run yet"))
    }

    @Test func badUseIsAUsageErrorAndAnUnwritablePathAnIOError() throws {
        let bench = try RunnerBench(inventory: 1)
        let page = bench.dir.path + "/night.html"
        for extra in [
            ["--split", bench.dir.path + "/s"], ["--format", "jsonl"], ["--state", "failed"], ["--raw"], ["--invalid"],
        ] {
            #expect(try CLI.run(["report", "--db", bench.db, "--html", page] + extra).status == 64, "\(extra)")
        }
        let missing = try CLI.run(["report", "--db", bench.db, "--html", bench.dir.path + "/no/such/dir/night.html"])
        #expect(missing.status == 74)
        #expect(missing.stderr.contains("no/such/dir/night.html"))
    }
}
