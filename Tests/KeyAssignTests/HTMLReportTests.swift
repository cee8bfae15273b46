import Foundation
import Testing

@testable import KeyAssign

/// `report --html` as pure functions from a `NightReport` to text: escaping, the chart's
/// geometry, the next steps. (HTMLReportCLITests drives the real command.)
@Suite struct HTMLReportTests {
    static let hostile = [
        "<script>alert(1)</script>", "</svg><img src=x onerror=alert(2)>", "\"><b onmouseover=x>", "a'b\"c&d",
        "</title></textarea><!--", "x'; rm -rf ~; echo '", "]]><![CDATA[", "\u{0}nul\u{1}",
    ]

    static func row(_ index: Int, state: WorkState, code: Int64? = nil, lastError: String? = nil) -> ReportRow {
        let h = hostile[index % hostile.count]
        return ReportRow(
            licenseKey: "K-\(index)" + h, ownerName: h, email: h + "@example.com", state: state.rawValue,
            code: code, attempts: 2, lastError: lastError, sourceFile: "/exports/" + h + ".csv",
            sourceLine: Int64(index + 2), updatedAt: h)
    }

    static func report(runs: [NightReport.RunOutcomes]? = nil, currentOwner: String? = nil) -> NightReport {
        let db = "/srv/db dir/" + hostile[1] + ".sqlite"
        let status = StatusReport(
            counts: WorkState.allCases.map { .init(state: $0, count: $0 == .assigned ? 1_234_567 : 3) },
            invalidRows: 1, imports: 2, runs: [])
        let needs =
            (0..<hostile.count).map { i in
                ActionItem(
                    row: row(i, state: i % 2 == 0 ? .failed : .uncertain, lastError: hostile[i]), databasePath: db)
            } + [
                ActionItem(
                    invalidSourceFile: hostile[0], sourceLine: 9, reason: hostile[2], licenseKey: hostile[3],
                    ownerName: hostile[4], email: hostile[5], databasePath: db)
            ]
        let refused = (0..<hostile.count).map { i in
            NightReport.RefusedRow(
                row: row(i, state: .rejected, code: 801, lastError: i == 0 ? "assigned to " + hostile[0] : nil),
                currentOwner: currentOwner)
        }
        return NightReport(
            databasePath: db, generatedAt: hostile[4],
            status: status,
            runs: runs ?? [
                .init(
                    id: 1, startedAt: hostile[0], endedAt: hostile[1], exitStatus: 1, rowsDone: 10,
                    outcomes: ["assigned": 6, "rejected": 2, "retry": 3, "failed": 2]),
                .init(
                    id: 2, startedAt: "2026-12-02T02:00:00.000Z", endedAt: nil, exitStatus: nil, rowsDone: 4,
                    outcomes: ["assigned": 20, "uncertain": 1, hostile[1]: 5]),
            ],
            sources: [
                .init(path: hostile[0], counts: [.assigned: 5, .failed: 1], invalid: 2),
                .init(path: hostile[1], counts: [:], invalid: 3),
            ],
            needsPerson: .init(items: needs, total: Int64(needs.count) + 1_000),
            refused: .init(items: refused, total: Int64(refused.count)))
    }

    /// Every tag the page may contain: anything else would be markup smuggled in from data.
    static let allowedTags: Set<String> = [
        "!doctype", "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "p", "code",
        "section",
        "div", "span", "svg", "line", "text", "g", "rect", "ul", "li", "details", "summary", "table", "thead", "tbody",
        "tfoot", "tr", "th", "td", "ol", "br", "footer",
    ]

    static func tags(_ page: String) -> [String] {
        page.matches(of: /<\/?([!A-Za-z][A-Za-z0-9-]*)/).map { String($0.output.1).lowercased() }
    }

    @Test func everythingFromTheDatabaseIsEscaped() {
        let page = HTMLReport.render(Self.report(currentOwner: "<i>evil</i> & co"))
        let unknown = Set(Self.tags(page)).subtracting(Self.allowedTags)
        #expect(unknown.isEmpty, "tags from data: \(unknown)")
        for markup in ["<script", "<img", "<b ", "<i>"] { #expect(!page.contains(markup), "\(markup)") }
        #expect(!page.contains("<!--") && !page.contains("<![CDATA"))
        #expect(page.components(separatedBy: "<svg").count == 2 && page.components(separatedBy: "</svg>").count == 2)
        #expect(page.components(separatedBy: "</title>").count == page.components(separatedBy: "<title").count)
        #expect(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(page.contains("&lt;/svg&gt;&lt;img src=x onerror=alert(2)&gt;"))
        #expect(page.contains("a&#39;b&quot;c&amp;d"))
        #expect(page.contains("&lt;i&gt;evil&lt;/i&gt; &amp; co"))
        #expect(!page.unicodeScalars.contains { $0.value == 0 || $0.value == 1 })
        // No attribute value is left open: quotes in the markup pair up.
        #expect(page.filter { $0 == "\"" }.count % 2 == 0)
    }

    @Test func selfContainedAndScriptFree() {
        let page = HTMLReport.render(Self.report())
        #expect(page.hasPrefix("<!DOCTYPE html>"))
        #expect(page.contains("Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\""))
        let urls = page.matches(of: /(https?:)?\/\/[A-Za-z0-9.-]+/).map { String($0.output.0) }
        #expect(urls.allSatisfy { $0 == "http://www.w3.org" }, "\(urls)")
        for forbidden in [
            "<script", "<link", "<img", "<iframe", "<object", "src=\"", "href=", "url(", "@import", "@font-face",
        ] {
            #expect(!page.lowercased().contains(forbidden), "\(forbidden)")
        }
    }

    @Test func theChartStacksEachRunsAttemptsToScale() {
        let runs: [NightReport.RunOutcomes] = (1...30).map { (i: Int) -> NightReport.RunOutcomes in
            let outcomes: [String: Int64] = ["assigned": Int64(i * 10), "failed": Int64(i % 3)]
            return NightReport.RunOutcomes(id: Int64(100 + i), startedAt: "t\(i)", outcomes: outcomes)
        }
        let svg = OutcomeChart(runs: runs).svg()
        #expect(svg.components(separatedBy: "<g class=\"bar\"").count - 1 == 30)
        let segments = svg.matches(
            of: /data-outcome="([a-z_]+)" data-count="(\d+)" x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"/)
        #expect(segments.count == 30 + runs.filter { $0.outcomes["failed"]! > 0 }.count)
        let assigned = segments.filter { $0.output.1 == "assigned" }
        // Height per attempt is the same for every bar, and the tallest bar fits the plot.
        let perAttempt = assigned.map { Double($0.output.4)! / Double($0.output.2)! }
        #expect(perAttempt.allSatisfy { abs($0 - perAttempt[0]) < 0.01 })
        #expect(assigned.allSatisfy { Double($0.output.3)! >= OutcomeChart.top - 0.01 })
        #expect(svg.contains(">130</text>"))  // the newest run is labelled
        #expect(!svg.contains(">101</text>"))  // 30 runs: every other label, counted from the newest
    }

    @Test func unknownOutcomesAreOtherAndTicksAreRound() {
        let run = NightReport.RunOutcomes(id: 1, startedAt: "", outcomes: ["assigned": 2, "<x>": 3, "y": 4])
        #expect(OutcomeChart.stack(run).first { $0.0.outcome == "other" }?.1 == 7)
        let svg = OutcomeChart(runs: [run]).svg()
        #expect(svg.contains("data-outcome=\"other\" data-count=\"7\""))
        #expect(!svg.contains("<x>"))
        #expect(OutcomeChart.tickStep(maximum: 0) == 1)
        #expect(OutcomeChart.tickStep(maximum: 9) == 5)
        #expect(OutcomeChart.tickStep(maximum: 37) == 10)
        #expect(
            OutcomeChart.tickStep(maximum: 1_000_000) == 250_000 || OutcomeChart.tickStep(maximum: 1_000_000) == 500_000
        )
    }

    @Test func nextStepsAreCommandsThatCannotBeHijackedByTheData() {
        let failed = ActionItem(
            row: Self.row(5, state: .failed, lastError: "gave up after 5 attempts: HTTP 503"),
            databasePath: "/var/lib/keyassign/k.sqlite")
        #expect(failed.reason.contains("gave up after 5 attempts: HTTP 503"))
        #expect(
            failed.steps.map(\.command) == [
                "keyassign retry --db /var/lib/keyassign/k.sqlite '--key=K-5x'\\''; rm -rf ~; echo '\\'''"
            ])
        let uncertain = ActionItem(row: Self.row(0, state: .uncertain), databasePath: "db")
        #expect(
            uncertain.steps.compactMap(\.command) == [
                "keyassign history --db db -- 'K-0<script>alert(1)</script>'",
                "keyassign retry --db db --state uncertain '--key=K-0<script>alert(1)</script>'",
            ])
        let odd = ActionItem(
            row: ReportRow(
                licenseKey: "-K", ownerName: nil, email: nil, state: "failed", code: 42, attempts: 1,
                lastError: nil, sourceFile: "f.csv", sourceLine: 2, updatedAt: ""),
            databasePath: "db")
        #expect(odd.steps.first?.advice.contains("code 42") == true)
        #expect(odd.steps.first?.command == "keyassign retry --db db --key=-K")
        let invalid = ActionItem(
            invalidSourceFile: "/x/it's.csv", sourceLine: 4, reason: "empty license key", licenseKey: nil,
            ownerName: nil, email: nil, databasePath: "db")
        #expect(invalid.steps.first?.command == "keyassign import --db db '/x/it'\\''s.csv'")
        #expect(ShellWord.quote("") == "''")
        #expect(ShellWord.quote("a\u{301}'b") == "'a\u{301}'\\''b'")
    }

    @Test func refusedKeysShowTheReasonAndTheOwnerSeam() {
        let unknownOwner = HTMLReport.render(Self.report())
        let refused = unknownOwner.components(separatedBy: "<section id=\"refused\">").last ?? ""
        #expect(refused.contains(">current owner</th>"))
        #expect(refused.contains("not known yet"))
        #expect(refused.contains("assigned to &lt;script&gt;"))  // last_error, when set, is the reason
        #expect(refused.contains("the server refused this key"))  // else the plain reason
        let known = HTMLReport.render(Self.report(currentOwner: "Acme GmbH, it@acme.example"))
        #expect(known.contains("<td class=\"owner\">Acme GmbH, it@acme.example</td>"))
    }

    @Test func listsSayHowManyMoreAndAnEmptyDatabaseHasNoChart() {
        let page = HTMLReport.render(Self.report())
        #expect(Self.hostile.count == 8)
        #expect(page.contains("Needs a person (1\u{2009}009)"))
        #expect(page.contains("…and 1\u{2009}000 more"))
        #expect(page.contains("1\u{2009}234\u{2009}567"))
        let empty = NightReport(
            databasePath: "db", generatedAt: "now",
            status: StatusReport(counts: [], invalidRows: 0, imports: 0, runs: []), runs: [], sources: [],
            needsPerson: .init(items: [], total: 0), refused: .init(items: [], total: 0))
        let emptyPage = HTMLReport.render(empty)
        #expect(!emptyPage.contains("<svg") && emptyPage.contains("No run yet"))
        #expect(emptyPage.contains("Nothing: no row failed"))
    }
}
