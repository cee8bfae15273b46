/// `keyassign report --html FILE`: the night on one page for sales ops and their managers.
///
/// One self-contained file: no scripts at all, no external fonts, images or style sheets
/// (the chart is inline SVG from `OutcomeChart`), and a Content-Security-Policy that forbids
/// scripts and every fetch, so that even a slip in escaping could not run anything. Every
/// value from a CSV export or the database goes through `HTMLText.escape`.
public enum HTMLReport {
    /// The page for `report` (pure: the same report gives the same bytes).
    public static func render(_ report: NightReport) -> String {
        let e = HTMLText.escape
        var page = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
            <meta name="referrer" content="no-referrer">
            <title>License keys: the night at a glance</title>
            <style>\(style)</style>
            </head>
            <body>
            <header>
            <h1>License keys: the night at a glance</h1>
            <p class="meta">Generated \(e(report.generatedAt)) from <code>\(e(report.databasePath))</code> by keyassign \(e(KeyAssignVersion.string)).</p>
            </header>

            """
        page += summary(report)
        page += chart(report)
        page += needsPerson(report)
        page += refused(report)
        page += sources(report)
        page += """
            <footer>
            <p>Every row, as files to work from: <code>keyassign report --db \(e(ShellWord.quote(report.databasePath))) --split DIR</code>
            writes <code>success.csv</code> and <code>errors.csv</code>. One key's whole story:
            <code>keyassign history --db \(e(ShellWord.quote(report.databasePath))) -- KEY</code>.</p>
            </footer>
            </body>
            </html>

            """
        return page
    }

    static func count(_ value: Int64) -> String {
        // Thousands separated by a thin space: 1 000 000 reads at a glance in any locale.
        let digits = String(value.magnitude)
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out += "\u{2009}" }
            out.append(digit)
        }
        return (value < 0 ? "-" : "") + out
    }

    static func summary(_ report: NightReport) -> String {
        let counts = Dictionary(uniqueKeysWithValues: report.status.counts.map { ($0.state, $0.count) })
        let waiting = (counts[.pending] ?? 0) + (counts[.retry] ?? 0) + (counts[.inFlight] ?? 0)
        let needs = report.needsPerson.total
        var last = "No run yet."
        if let run = report.runs.last {
            let end = run.endedAt.map { "ended \(HTMLText.escape($0))" } ?? "has not ended (still running, or it died)"
            let exit = run.exitStatus.map { " with exit status \($0) (\(HTMLText.escape(exitMeaning($0))))" } ?? ""
            last = "Last run: \(run.id), started \(HTMLText.escape(run.startedAt)), \(end)\(exit)."
        }
        return """
            <section id="summary">
            <div class="cards">
            <div class="card ok"><span class="n">\(count(counts[.assigned] ?? 0))</span> assigned</div>
            <div class="card \(needs > 0 ? "alert" : "ok")"><span class="n">\(count(needs))</span> need a person</div>
            <div class="card warn"><span class="n">\(count(counts[.rejected] ?? 0))</span> refused by the server</div>
            <div class="card"><span class="n">\(count(waiting))</span> waiting for the next run</div>
            <div class="card"><span class="n">\(count(report.status.total))</span> keys queued, from \(count(report.status.imports)) import\(report.status.imports == 1 ? "" : "s")</div>
            </div>
            <p>\(last)</p>
            </section>

            """
    }

    static func exitMeaning(_ status: Int64) -> String {
        switch status {
        case 0: "every row assigned or refused"
        case 1: "some rows failed, uncertain or left to retry"
        case 3: "stopped: the server refused the API key or access"
        case 74: "database or file-system error"
        case 75: "another run held the database"
        case 78: "bad configuration"
        case 130, 143: "interrupted"
        default: "see the exit statuses in the README"
        }
    }

    static func chart(_ report: NightReport) -> String {
        guard !report.runs.isEmpty else {
            return """
                <section id="runs">
                <h2>Outcomes per run</h2>
                <p class="muted">No run yet: the chart appears after the first <code>keyassign run</code> or <code>sync</code>.</p>
                </section>

                """
        }
        let legend = OutcomeChart.series.map {
            "<li><span class=\"swatch\" style=\"background:\($0.color)\"></span>\(HTMLText.escape($0.label))</li>"
        }.joined()
        var rows = ""
        for run in report.runs.reversed() {
            let cells = OutcomeChart.stack(run).map { "<td class=\"num\">\($0.1 == 0 ? "" : count($0.1))</td>" }
                .joined()
            rows +=
                "<tr><td class=\"num\">\(run.id)</td><td>\(HTMLText.escape(run.startedAt))</td>"
                + "<td>\(run.exitStatus.map(String.init) ?? "—")</td><td class=\"num\">\(count(run.rowsDone))</td>\(cells)</tr>\n"
        }
        let heads = OutcomeChart.series.map { "<th>\(HTMLText.escape($0.label))</th>" }.joined()
        return """
            <section id="runs">
            <h2>Outcomes per run (the last \(report.runs.count))</h2>
            <p class="muted">Every attempt a run made, by how it ended. A retried row counts once per attempt.</p>
            \(OutcomeChart(runs: report.runs).svg())
            <ul class="legend">\(legend)</ul>
            <details><summary>The same as numbers</summary>
            <table class="runs"><thead><tr><th>run</th><th>started (UTC)</th><th>exit</th><th>rows done</th>\(heads)</tr></thead>
            <tbody>
            \(rows)</tbody></table>
            </details>
            </section>

            """
    }

    static func more(_ omitted: Int64, _ report: NightReport) -> String {
        guard omitted > 0 else { return "" }
        return "<p class=\"more\">…and \(count(omitted)) more: <code>keyassign report --db "
            + "\(HTMLText.escape(ShellWord.quote(report.databasePath))) --split DIR</code> lists every one in <code>errors.csv</code>.</p>\n"
    }

    /// The file's name and line; the whole path in the tooltip (paths of exports are long
    /// and alike, the name is what tells them apart).
    static func source(_ file: String, _ line: Int64) -> String {
        let name = file.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? file
        return
            "<span class=\"src\" title=\"\(HTMLText.escape(file))\">\(HTMLText.escape(name.isEmpty ? file : name)):\(line)</span>"
    }

    static func buyer(_ name: String?, _ email: String?) -> String {
        let e = HTMLText.escape
        return "\(e(name ?? "(no name)"))<br><span class=\"muted\">\(e(email ?? "(no email)"))</span>"
    }

    static func needsPerson(_ report: NightReport) -> String {
        let list = report.needsPerson
        guard list.total > 0 else {
            return """
                <section id="needs-person">
                <h2>Needs a person</h2>
                <p class="good">Nothing: no row failed, none is uncertain, and every input row could be queued.</p>
                </section>

                """
        }
        var rows = ""
        for item in list.items {
            let steps = item.steps.map { step in
                "<li>\(HTMLText.escape(step.advice))"
                    + (step.command.map { "<br><code class=\"cmd\">\(HTMLText.escape($0))</code>" } ?? "") + "</li>"
            }.joined()
            rows +=
                "<tr class=\"k-\(kindClass(item.kind))\"><td><span class=\"badge\">\(HTMLText.escape(item.kind))</span></td>"
                + "<td><code>\(HTMLText.escape(item.licenseKey ?? "(none)"))</code></td>"
                + "<td>\(buyer(item.ownerName, item.email))</td><td>\(source(item.sourceFile, item.sourceLine))</td>"
                + "<td>\(HTMLText.escape(item.reason))</td><td><ol class=\"steps\">\(steps)</ol></td></tr>\n"
        }
        return """
            <section id="needs-person">
            <h2>Needs a person (\(count(list.total)))</h2>
            <p class="muted">Failed and uncertain keys, and input rows that could not be queued: why, and what to do next.</p>
            <table class="rows"><thead><tr><th class="w-state">state</th><th class="w-key">license key</th><th class="w-buyer">sold to</th><th class="w-src">from</th><th>why</th><th class="w-next">next step</th></tr></thead>
            <tbody>
            \(rows)</tbody></table>
            \(more(list.omitted, report))</section>

            """
    }

    static func kindClass(_ kind: String) -> String {
        ["failed", "uncertain", "invalid"].contains(kind) ? kind : "other"
    }

    static func refused(_ report: NightReport) -> String {
        let list = report.refused
        guard list.total > 0 else {
            return """
                <section id="refused">
                <h2>Refused keys</h2>
                <p class="good">None: the server has refused no key.</p>
                </section>

                """
        }
        var rows = ""
        for refused in list.items {
            let row = refused.row
            // The reason names the current owner once reconciliation has recorded it in
            // last_error; before that, the plain reason says what to check.
            let reason = row.lastError ?? SplitReport.plainReason(row)
            let owner =
                refused.currentOwner.map { HTMLText.escape($0) }
                ?? "<span class=\"muted\">not known yet</span>"
            rows +=
                "<tr><td><code>\(HTMLText.escape(row.licenseKey))</code></td><td>\(buyer(row.ownerName, row.email))</td>"
                + "<td>\(source(row.sourceFile, row.sourceLine))</td><td>\(HTMLText.escape(reason))</td>"
                + "<td class=\"owner\">\(owner)</td></tr>\n"
        }
        return """
            <section id="refused">
            <h2>Refused keys (\(count(list.total)))</h2>
            <p class="muted">The server answered a verified 801: the key is unknown to it, or it is assigned to someone already.
            Check the key in the sales system.</p>
            <table class="rows"><thead><tr><th class="w-key">license key</th><th class="w-buyer">sold to</th><th class="w-src">from</th><th>why</th><th class="w-owner">current owner</th></tr></thead>
            <tbody>
            \(rows)</tbody></table>
            \(more(list.omitted, report))</section>

            """
    }

    static func sources(_ report: NightReport) -> String {
        var out = "<section id=\"sources\">\n<h2>Per source file</h2>\n"
        if report.sources.isEmpty { out += "<p class=\"muted\">Nothing imported yet.</p>\n" }
        for file in report.sources {
            var rows = ""
            for state in WorkState.allCases {
                let n = file.counts[state] ?? 0
                rows +=
                    "<tr class=\"\(n == 0 ? "zero" : "s-\(state.rawValue)")\"><td>\(state.rawValue)</td><td class=\"num\">\(count(n))</td></tr>"
            }
            rows +=
                "<tr class=\"\(file.invalid == 0 ? "zero" : "s-invalid")\"><td>invalid input (not queued)</td><td class=\"num\">\(count(file.invalid))</td></tr>"
            out += """
                <div class="source">
                <h3><code>\(HTMLText.escape(file.path))</code></h3>
                <table class="states"><thead><tr><th>state</th><th>rows</th></tr></thead>
                <tbody>\(rows)</tbody>
                <tfoot><tr><td>total</td><td class="num">\(count(file.queued + file.invalid))</td></tr></tfoot></table>
                </div>

                """
        }
        return out + "</section>\n"
    }

    static let style = """

        :root { color-scheme: light; }
        body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f; margin: 0 auto; max-width: 1120px; padding: 16px 24px 40px; background: #fff; }
        h1 { font-size: 22px; margin: 8px 0 2px; }
        h2 { font-size: 17px; margin: 28px 0 6px; border-bottom: 1px solid #e0e0e0; padding-bottom: 4px; }
        h3 { font-size: 14px; margin: 0 0 6px; overflow-wrap: anywhere; }
        code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 12px; overflow-wrap: anywhere; }
        code.cmd { display: inline-block; background: #f4f4f5; border: 1px solid #e2e2e5; border-radius: 4px; padding: 1px 5px; margin-top: 3px; }
        .meta, .muted { color: #666; }
        .good { color: #2e7d32; font-weight: 600; }
        .cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0 8px; }
        .card { flex: 1 1 150px; border: 1px solid #e0e0e0; border-left: 5px solid #9e9e9e; border-radius: 6px; padding: 8px 12px; }
        .card .n { display: block; font-size: 24px; font-weight: 700; }
        .card.ok { border-left-color: #2e7d32; } .card.alert { border-left-color: #d32f2f; background: #fff5f5; } .card.warn { border-left-color: #f9a825; }
        svg.outcome-chart { max-width: 860px; height: auto; display: block; }
        ul.legend { list-style: none; padding: 0; margin: 6px 0; display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 12px; }
        .swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
        table { border-collapse: collapse; margin: 6px 0; }
        th, td { border-bottom: 1px solid #ececec; padding: 5px 8px; text-align: left; vertical-align: top; }
        th { background: #fafafa; font-weight: 600; font-size: 12px; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        table.rows { width: 100%; font-size: 13px; table-layout: fixed; }
        table.rows td { overflow-wrap: anywhere; }
        .w-state { width: 96px; } .w-key { width: 130px; } .w-buyer { width: 140px; } .w-src { width: 110px; }
        .w-next { width: 30%; } .w-owner { width: 170px; }
        table.rows code { font-size: 11px; }
        code.cmd { white-space: pre-wrap; overflow-wrap: anywhere; }
        .badge { display: inline-block; white-space: nowrap; border-radius: 10px; padding: 0 8px; font-size: 12px; font-weight: 600; background: #eee; }
        tr.k-failed .badge { background: #fdecea; color: #b71c1c; } tr.k-uncertain .badge { background: #f3e5f5; color: #6a1b9a; } tr.k-invalid .badge { background: #fff8e1; color: #8d6e00; }
        ol.steps { margin: 0; padding-left: 18px; }
        .src { color: #555; overflow-wrap: anywhere; }
        .sources, #sources { display: block; }
        #sources .source { display: inline-block; vertical-align: top; margin: 6px 24px 10px 0; min-width: 240px; }
        tr.zero td { color: #aaa; }
        tfoot td { font-weight: 600; border-top: 1px solid #ccc; }
        details { margin-top: 6px; } summary { cursor: pointer; color: #444; }
        table.runs { font-size: 12px; }
        footer { margin-top: 32px; color: #555; font-size: 13px; border-top: 1px solid #e0e0e0; padding-top: 8px; }
        @media print { details { display: none; } body { max-width: none; } }

        """
}

extension HTMLReport {
    /// Reads the database and writes the page to `path` (0600, atomically).
    public static func write(from db: Database, to path: String) throws {
        try PrivateFile.write(render(try NightReport.load(from: db)), to: path)
    }
}
