/// The attempts of each run stacked by outcome, as inline SVG that keyassign draws itself:
/// the page has no scripts, so the chart is plain shapes, with a `<title>` on each bar
/// segment for the exact numbers.
public struct OutcomeChart: Sendable {
    /// An outcome as the chart shows it: its colour is part of the page's legend.
    public struct Series: Sendable, Equatable {
        public var outcome: String
        public var label: String
        public var color: String
    }

    /// Bottom to top. Colours are distinct in hue and lightness, so they read in greyscale
    /// print too; `other` collects outcomes this version does not know.
    public static let series: [Series] = [
        Series(outcome: AttemptOutcome.assigned.rawValue, label: "assigned", color: "#2e7d32"),
        Series(outcome: AttemptOutcome.rejected.rawValue, label: "refused (801)", color: "#f9a825"),
        Series(outcome: AttemptOutcome.uncertain.rawValue, label: "uncertain", color: "#8e24aa"),
        Series(outcome: AttemptOutcome.failed.rawValue, label: "failed", color: "#d32f2f"),
        Series(outcome: AttemptOutcome.retry.rawValue, label: "retried later", color: "#64b5f6"),
        Series(outcome: AttemptOutcome.rateLimited.rawValue, label: "rate limited (429)", color: "#b0bec5"),
        Series(outcome: AttemptOutcome.interrupted.rawValue, label: "interrupted", color: "#6d4c41"),
        Series(outcome: AttemptOutcome.authStop.rawValue, label: "auth refused", color: "#263238"),
        Series(outcome: "other", label: "other", color: "#9e9e9e"),
    ]

    public var runs: [NightReport.RunOutcomes]

    public init(runs: [NightReport.RunOutcomes]) {
        self.runs = runs
    }

    // Geometry, in the SVG's own units (it scales to the page's width).
    static let width = 760.0, height = 280.0
    static let left = 56.0, right = 12.0, top = 14.0, bottom = 44.0

    /// Each run's counts in `series` order, unknown outcomes folded into `other`.
    static func stack(_ run: NightReport.RunOutcomes) -> [(Series, Int64)] {
        let known = Set(series.map(\.outcome))
        let other = run.outcomes.filter { !known.contains($0.key) }.values.reduce(0, +)
        return series.map { item in
            (item, item.outcome == "other" ? other : run.outcomes[item.outcome] ?? 0)
        }
    }

    /// A round step for `ticks` gridlines up to at least `maximum`: 1, 2 or 5 × 10ⁿ, at least 1.
    static func tickStep(maximum: Int64, ticks: Int64 = 4) -> Int64 {
        let raw = max(1, (maximum + ticks - 1) / ticks)
        var magnitude: Int64 = 1
        while magnitude * 10 <= raw { magnitude *= 10 }
        for factor: Int64 in [1, 2, 5, 10] where factor * magnitude >= raw { return factor * magnitude }
        return 10 * magnitude
    }

    static func format(_ value: Double) -> String {
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? String(Int64(rounded)) : String(rounded)
    }

    /// The `<svg>` element. Every text in it that came from the database is escaped.
    public func svg() -> String {
        let plotWidth = Self.width - Self.left - Self.right
        let plotHeight = Self.height - Self.top - Self.bottom
        let maximum = runs.map(\.attempts).max() ?? 0
        let step = Self.tickStep(maximum: maximum)
        let top = max(step, (maximum + step - 1) / step * step)
        // Room for a month of nightly runs: few runs make narrow bars on the left, not a
        // single bar as wide as the page.
        let slot = plotWidth / Double(max(runs.count, 10))
        let barWidth = slot * 0.7
        func y(_ value: Int64) -> Double { Self.top + plotHeight * (1 - Double(value) / Double(top)) }

        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" class="outcome-chart" viewBox="0 0 \(Self.format(Self.width)) \(Self.format(Self.height))" \
            width="100%" role="img" aria-labelledby="chart-title" font-family="system-ui, sans-serif" font-size="11">
            <title id="chart-title">Attempts per run by outcome, the last \(runs.count) run\(runs.count == 1 ? "" : "s")</title>

            """
        var tick: Int64 = 0
        while tick <= top {
            let lineY = Self.format(y(tick))
            out +=
                "<line x1=\"\(Self.format(Self.left))\" x2=\"\(Self.format(Self.width - Self.right))\" y1=\"\(lineY)\" y2=\"\(lineY)\" "
                + "stroke=\"\(tick == 0 ? "#555" : "#ddd")\" stroke-width=\"1\"/>"
                + "<text x=\"\(Self.format(Self.left - 6))\" y=\"\(lineY)\" text-anchor=\"end\" dominant-baseline=\"middle\" fill=\"#555\">\(tick)</text>\n"
            tick += step
        }
        out +=
            "<text x=\"12\" y=\"\(Self.format(Self.top + plotHeight / 2))\" transform=\"rotate(-90 12 \(Self.format(Self.top + plotHeight / 2)))\" "
            + "text-anchor=\"middle\" fill=\"#555\">attempts</text>\n"
        // Label every run while they fit, else every other one (the newest always).
        let labelEvery = runs.count > 16 ? 2 : 1
        for (position, run) in runs.enumerated() {
            let x = Self.left + slot * Double(position) + (slot - barWidth) / 2
            let exit = run.exitStatus.map { "exit \($0)" } ?? "no exit status (running, or died)"
            out +=
                "<g class=\"bar\" data-run=\"\(run.id)\" data-attempts=\"\(run.attempts)\">"
                + "<title>\(HTMLText.escape("run \(run.id), started \(run.startedAt), \(exit): \(run.attempts) attempts"))</title>\n"
            var base: Int64 = 0
            for (item, count) in Self.stack(run) where count > 0 {
                let y0 = y(base)
                let y1 = y(base + count)
                out +=
                    "<rect class=\"seg\" data-outcome=\"\(item.outcome)\" data-count=\"\(count)\" "
                    + "x=\"\(Self.format(x))\" y=\"\(Self.format(y1))\" width=\"\(Self.format(barWidth))\" "
                    + "height=\"\(Self.format(max(0, y0 - y1)))\" fill=\"\(item.color)\">"
                    + "<title>run \(run.id): \(count) \(HTMLText.escape(item.label))</title></rect>\n"
                base += count
            }
            if position % labelEvery == (runs.count - 1) % labelEvery {
                out +=
                    "<text x=\"\(Self.format(x + barWidth / 2))\" y=\"\(Self.format(Self.height - Self.bottom + 16))\" "
                    + "text-anchor=\"middle\" fill=\"#333\">\(run.id)</text>\n"
            }
            out += "</g>\n"
        }
        out +=
            "<text x=\"\(Self.format(Self.left + plotWidth / 2))\" y=\"\(Self.format(Self.height - 8))\" text-anchor=\"middle\" fill=\"#555\">run</text>\n"
        out += "</svg>"
        return out
    }
}
