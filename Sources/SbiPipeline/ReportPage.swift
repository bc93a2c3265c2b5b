// STEM.report.html: one self-contained page (inline SVG and CSS, no scripts, no external
// resources): the verdict and its checks first, warnings in plain language, a summary table with
// contraction and calibration cautions, marginal histograms over the prior's range, a pair plot of
// the scalar parameters, and quantile bands of functions and predictions with the observed points
// over their posterior predictive bands; time axes in calendar dates when the file gives them.
import Foundation
import SbiCore

enum ReportPage {
    /// scalarTokens: parameter label -> its token in the draws.
    static func render(_ r: Report, draws: [[Double]], unconstrained: [[Double]]? = nil, scalarTokens: [String: [Int]]) -> String {
        header(r) + verdict(r) + warnings(r) + summary(r)
            + marginals(r, draws: draws, unconstrained: unconstrained, scalarTokens: scalarTokens) + bands(r) + footer(r)
    }

    /// The page head, the style sheet and the title line.
    static func header(_ r: Report) -> String {
        let h = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <title>sbiwatch report: \(esc(r.input.file))</title>
        <style>
        body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
        h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}
        table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #eee}
        th:first-child,td:first-child{text-align:left}
        .warn{background:#fff4e0;border-left:4px solid #e69500;padding:.5em 1em;margin:.5em 0}
        .note{color:#555}.meta{color:#555;font-size:.9em}
        svg{background:#fff;margin:4px}svg text{font-size:10px;fill:#333}
        .fig{display:inline-block;vertical-align:top}
        .verdict{padding:.6em 1em;margin:.5em 0;border-left:6px solid}.verdict b{text-transform:uppercase}
        .ok{background:#e8f5e9;border-color:#2e7d32}.caution{background:#fff4e0;border-color:#e69500}
        .unreliable{background:#fdecea;border-color:#c62828}td.flag{color:#c62828;font-weight:bold}
        </style></head><body>
        <h1>Posterior for \(esc(r.input.file))</h1>
        <p class="meta">model <b>\(esc(r.model.name))</b> (sha256 \(esc(String(r.model.sha256.prefix(16))))…\(r.model.task.map { ", task " + esc($0) } ?? "")) ·
        \(r.sampler.samples) samples, \(esc(r.sampler.method)) sampler, \(r.sampler.steps) steps, seed \(r.sampler.seed) ·
        sbiwatch \(esc(r.sbiwatchVersion)) · \(esc(r.created))</p>

        """
        return h
    }

    /// The verdict, its reasons, and the table of checks.
    static func verdict(_ r: Report) -> String {
        let d = r.diagnostics
        var h = "<div class=\"verdict \(esc(d.verdict))\"><b>\(esc(d.verdict))</b>: how far to trust this result<ul>"
        h += d.reasons.map { "<li>\(esc($0))</li>" }.joined() + "</ul></div>\n"
        guard !d.checks.isEmpty else { return h }
        h += "<table><tr><th>check</th><th>statistic</th><th>p-value</th><th>threshold</th><th>result</th></tr>\n"
        for c in d.checks {
            h += "<tr><td>\(esc(c.name))</td><td>\(c.statistic.map(num) ?? "")</td><td>\(c.pValue.map(num) ?? "")</td>"
            h += "<td>\(c.threshold.map(num) ?? "")</td>" + (c.flagged ? "<td class=\"flag\">flagged</td>" : "<td>passed</td>") + "</tr>\n"
        }
        let how = d.combination == .heldOut
            ? "the checks' smallest p-value ranked among those of the model's held-out simulations under the same checks (Šidák's adjustment where smaller, beyond the most extreme of them)"
            : "the checks' smallest p-value adjusted for their number (Šidák)"
        h += "</table>\n<p class=\"meta\">Verdict from \(how): combined p = \(d.combinedPValue.map(num) ?? "none"); caution below 0.05, unreliable below 0.01.</p>\n"
        return h
    }

    /// Warnings and notes.
    static func warnings(_ r: Report) -> String {
        var h = ""
        h += "<h2 id=\"warnings\">Warnings</h2>\n"
        if r.diagnostics.warnings.isEmpty { h += "<p>None: the observations look like what the model was trained on, and the samples stay inside the prior's support.</p>\n" }
        for w in r.diagnostics.warnings { h += "<div class=\"warn\">\(esc(w))</div>\n" }
        if !r.diagnostics.notes.isEmpty {
            h += "<ul class=\"note\">" + r.diagnostics.notes.map { "<li>\(esc($0))</li>" }.joined() + "</ul>\n"
        }
        return h
    }

    /// The table of parameters and the observed scalars.
    static func summary(_ r: Report) -> String {
        var h = ""
        h += "<h2 id=\"summary\">Parameters</h2>\n<table><tr><th>parameter</th><th>mean</th><th>sd</th><th>5%</th><th>25%</th><th>median</th><th>75%</th><th>95%</th><th>prior range</th><th>contraction</th><th>units</th>"
        h += (r.unconstrainedParameters != nil ? "<th>without the constraints: median [5%, 95%]</th>" : "") + "</tr>\n"
        for (name, s) in r.parameters.sorted(by: { $0.key < $1.key }) {
            let mark = s.calibrationCaution.map { " <span title=\"\(esc($0))\">&#9888; calibration failed</span>" } ?? ""
            h += "<tr><td>\(esc(name))\(mark)</td>" + [s.mean, s.sd, s.q05, s.q25, s.q50, s.q75, s.q95].map { "<td>\(num($0))</td>" }.joined()
            h += "<td>\(s.priorRange.map { "[\(num($0[0])), \(num($0[1]))]" } ?? "")</td><td>\(s.contraction.map(num) ?? "")</td>"
            h += "<td>\(esc(s.units ?? ""))</td>"
            if let free = r.unconstrainedParameters { h += "<td>" + (free[name].map { "\(num($0.q50)) [\(num($0.q05)), \(num($0.q95))]" } ?? "") + "</td>" }
            h += "</tr>\n"
        }
        h += "</table>\n<p class=\"meta\">contraction: 1 - posterior variance / prior variance (1: the data pinned it down; 0: nothing learnt)</p>\n"
        for (name, f) in r.functions.sorted(by: { $0.key < $1.key }) {
            if let c = f.calibrationCaution { h += "<div class=\"warn\">\(esc(name)): \(esc(c))</div>\n" }
        }
        if let constraints = r.constraints {
            h += "<h2 id=\"constraints\">Constraints</h2>\n<table><tr><th>constraint</th><th>samples satisfying it</th><th>without the constraints</th></tr>\n"
            for c in constraints {
                h += "<tr><td><code>\(esc(c.expression))</code></td><td>\(num(100 * c.satisfied))%</td><td>\(c.satisfiedWithout.map { num(100 * $0) + "%" } ?? "")</td></tr>\n"
            }
            h += "</table>\n<p class=\"meta\">sampled with guidance (man sbiwatch, CONSTRAINTS); a soft equality counts as satisfied within its tolerance</p>\n"
        }
        if !r.observed.scalars.isEmpty || !r.observed.intervals.isEmpty {
            h += "<p>Observed: " + r.observed.scalars.sorted { $0.key < $1.key }.map { "\(esc($0.key)) = \(num($0.value))" }.joined(separator: ", ")
            h += r.observed.intervals.sorted { $0.key < $1.key }.map { ", \(esc($0.key)) in [\($0.value[0].map(num) ?? "-inf"), \($0.value[1].map(num) ?? "inf")]" }.joined()
            h += "</p>\n"
        }
        return h
    }

    /// Marginal histograms and the pair plot of the scalar parameters.
    static func marginals(_ r: Report, draws: [[Double]], unconstrained: [[Double]]?, scalarTokens: [String: [Int]]) -> String {
        var h = ""
        let scalarColumns = scalarTokens.sorted { $0.key < $1.key }.filter { !$0.value.isEmpty }
        if !scalarColumns.isEmpty {
            let outlined = unconstrained != nil ? "; black outline: the same query without the file's constraints (bars obey them)" : ""
            h += "<h2 id=\"marginals\">Marginal posteriors</h2>\n<p class=\"meta\">the axis spans the prior's range where it is bounded (grey ends mark it); red: the median\(outlined)</p>\n"
            for (name, tokens) in scalarColumns {
                let prior = r.parameters[name]?.priorRange.map { ($0[0], $0[1]) }
                h += "<div class=\"fig\">" + histogram(draws.map { $0[tokens[0]] }, title: name, width: 220, height: 150, prior: prior,
                                                       without: unconstrained?.map { $0[tokens[0]] }) + "</div>\n"
            }
        }
        // pair plot
        let pairs = Array(scalarColumns.prefix(6))
        if pairs.count >= 2 {
            h += "<h2 id=\"pairs\">Pair plot</h2>\n" + pairPlot(pairs.map { pair in (pair.key, draws.map { $0[pair.value[0]] }) }) + "\n"
        }
        return h
    }

    /// Bands of functions and predictions, and the series only observed.
    static func bands(_ r: Report) -> String {
        var h = ""
        let bands = r.functions.sorted { $0.key < $1.key }.map { ($0.key, $0.value, "function") }
            + r.predictions.sorted { $0.key < $1.key }.map { ($0.key, $0.value, "prediction") }
        if !bands.isEmpty {
            h += "<h2 id=\"bands\">Functions and predictions</h2>\n<p class=\"meta\">median (line), 50% and 90% bands; observed points as dots</p>\n"
            for (name, band, kind) in bands {
                let observed = r.observed.series[name]
                h += "<div class=\"fig\">" + bandChart(band, observed: observed, predictive: r.posteriorPredictive[name],
                                                       calendar: r.observed.calendar, title: "\(name) (\(kind))") + "</div>\n"
                if let answer = band.answeredBy { h += "<p class=\"meta\">\(esc(name)): \(esc(answer.sentence))</p>\n" }
            }
        }
        let shown = Set(r.predictions.keys)
        let onlyObserved = r.observed.series.filter { !shown.contains($0.key) }.sorted { $0.key < $1.key }
        if !onlyObserved.isEmpty {
            h += "<h2 id=\"observations\">Observations</h2>\n<p class=\"meta\">observed points (red) over the posterior predictive 90% band at the observed times (orange)</p>\n"
            for (name, s) in onlyObserved {
                h += "<div class=\"fig\">" + bandChart(nil, observed: s, predictive: r.posteriorPredictive[name],
                                                       calendar: r.observed.calendar, title: "\(name) (observed)") + "</div>\n"
            }
        }
        return h
    }

    /// Timings and digests.
    static func footer(_ r: Report) -> String {
        var h = ""
        h += "<h2>Timings</h2>\n<p class=\"meta\">" + r.timingsSeconds.sorted { $0.key < $1.key }.map { "\(esc($0.key)) \(String(format: "%.2f", $0.value)) s" }.joined(separator: " · ") + "</p>\n"
        h += "<p class=\"meta\">input sha256 \(esc(r.input.sha256)); model sha256 \(esc(r.model.sha256))</p>\n</body></html>\n"
        return h
    }

    static func esc(_ s: String) -> String {
        var o = ""
        for c in s {
            switch c {
            case "&": o += "&amp;"
            case "<": o += "&lt;"
            case ">": o += "&gt;"
            case "\"": o += "&quot;"
            default: o.append(c)
            }
        }
        return o
    }

    /// Round, readable tick values covering [lo, hi].
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        guard hi > lo else { return [lo] }
        let raw = (hi - lo) / Double(count)
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        var t = ceil(lo / step) * step, out: [Double] = []
        // at most a dozen ticks, and none when the step vanishes against the values' magnitude
        while t <= hi + step * 1e-9, out.count < 12, t + step != t { out.append(abs(t) < step * 1e-9 ? 0 : t); t += step }
        return out
    }

    static func range(_ values: [Double]) -> (Double, Double) {
        let finite = values.filter(\.isFinite)
        guard var lo = finite.min(), var hi = finite.max() else { return (0, 1) }
        let spread = max(abs(lo), abs(hi), 1) * 1e-6
        if hi - lo < spread { lo -= spread; hi += spread }
        return (lo, hi)
    }

    static func p(_ x: Double) -> String { String(format: "%.1f", x) }

    /// values: samples of one scalar. A 30-bin histogram with the median marked; `without`, samples
    /// of the same scalar without the file's constraints, drawn as an outline on the same scale.
    static func histogram(_ values: [Double], title: String, width: Double, height: Double, axes: Bool = true,
                          prior: (Double, Double)? = nil, without: [Double]? = nil) -> String {
        var (lo, hi) = range(values + (without ?? []))
        if let (a, b) = prior, a.isFinite, b.isFinite, b > a { lo = min(lo, a); hi = max(hi, b) }
        let bins = 30
        func binned(_ xs: [Double]) -> [Int] {
            var counts = [Int](repeating: 0, count: bins)
            for v in xs where v.isFinite { counts[min(bins - 1, max(0, Int((v - lo) / (hi - lo) * Double(bins))))] += 1 }
            return counts
        }
        let counts = binned(values), outline = without.map(binned)
        let top = Double(max(counts.max() ?? 1, outline?.max() ?? 1))
        let left = 10.0, right = width - 10, bottom = height - (axes ? 22 : 4), topY = axes ? 18.0 : 4
        var s = "<svg width=\"\(p(width))\" height=\"\(p(height))\" role=\"img\" aria-label=\"histogram of \(esc(title))\">"
        if axes { s += "<text x=\"\(p(width / 2))\" y=\"12\" text-anchor=\"middle\">\(esc(title))</text>" }
        let bw = (right - left) / Double(bins)
        for (i, c) in counts.enumerated() where c > 0 {
            let hgt = Double(c) / top * (bottom - topY)
            s += "<rect x=\"\(p(left + Double(i) * bw))\" y=\"\(p(bottom - hgt))\" width=\"\(p(bw - 0.5))\" height=\"\(p(hgt))\" fill=\"#4a7ab5\"/>"
        }
        if let outline {
            var path = "M\(p(left)) \(p(bottom))"
            for (i, c) in outline.enumerated() {
                let y = bottom - Double(c) / top * (bottom - topY)
                path += " L\(p(left + Double(i) * bw)) \(p(y)) L\(p(left + Double(i + 1) * bw)) \(p(y))"
            }
            s += "<path d=\"\(path) L\(p(right)) \(p(bottom))\" fill=\"none\" stroke=\"#333\" stroke-width=\"1.2\"/>"
        }
        let med = quantile(values.filter(\.isFinite).sorted(), 0.5)
        let mx = left + (med - lo) / (hi - lo) * (right - left)
        s += "<line x1=\"\(p(mx))\" x2=\"\(p(mx))\" y1=\"\(p(topY))\" y2=\"\(p(bottom))\" stroke=\"#c0392b\" stroke-width=\"1.5\"/>"
        if let (a, b) = prior {
            for edge in [a, b] {
                let x = left + (edge - lo) / (hi - lo) * (right - left)
                s += "<line x1=\"\(p(x))\" x2=\"\(p(x))\" y1=\"\(p(topY))\" y2=\"\(p(bottom))\" stroke=\"#888\" stroke-width=\"2\" stroke-dasharray=\"3,2\"/>"
            }
        }
        s += "<line x1=\"\(p(left))\" x2=\"\(p(right))\" y1=\"\(p(bottom))\" y2=\"\(p(bottom))\" stroke=\"#333\"/>"
        if axes {
            for t in ticks(lo, hi, count: 4) {
                let x = left + (t - lo) / (hi - lo) * (right - left)
                s += "<text x=\"\(p(x))\" y=\"\(p(bottom + 13))\" text-anchor=\"middle\">\(num(t))</text>"
            }
        }
        return s + "</svg>"
    }

    /// columns: (name, samples) of up to 6 scalars; histograms on the diagonal, scatter below it.
    static func pairPlot(_ columns: [(String, [Double])]) -> String {
        let n = columns.count, cell = 130.0, pad = 40.0
        let size = pad + Double(n) * cell
        var s = "<svg width=\"\(p(size))\" height=\"\(p(size))\" role=\"img\" aria-label=\"pair plot\">"
        let ranges = columns.map { range($0.1) }
        let shown = min(columns[0].1.count, 500)
        for i in 0..<n {
            s += "<text x=\"\(p(pad + Double(i) * cell + cell / 2))\" y=\"\(p(size - 8))\" text-anchor=\"middle\">\(esc(columns[i].0))</text>"
            s += "<text x=\"12\" y=\"\(p(Double(i) * cell + cell / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 12 \(p(Double(i) * cell + cell / 2)))\">\(esc(columns[i].0))</text>"
            for j in 0...i {
                let x0 = pad + Double(j) * cell, y0 = Double(i) * cell
                s += "<rect x=\"\(p(x0 + 2))\" y=\"\(p(y0 + 2))\" width=\"\(p(cell - 4))\" height=\"\(p(cell - 4))\" fill=\"none\" stroke=\"#ddd\"/>"
                if i == j {
                    let inner = histogram(columns[i].1, title: columns[i].0, width: cell - 4, height: cell - 4, axes: false)
                    s += "<g transform=\"translate(\(p(x0 + 2)),\(p(y0 + 2)))\">" + inner.replacingOccurrences(of: "<svg ", with: "<svg x=\"0\" y=\"0\" ") + "</g>"
                } else {
                    let (xl, xh) = ranges[j], (yl, yh) = ranges[i]
                    for k in 0..<shown {
                        let xv = columns[j].1[k], yv = columns[i].1[k]
                        guard xv.isFinite, yv.isFinite else { continue }
                        let x = x0 + 6 + (xv - xl) / (xh - xl) * (cell - 12)
                        let y = y0 + cell - 6 - (yv - yl) / (yh - yl) * (cell - 12)
                        s += "<circle cx=\"\(p(x))\" cy=\"\(p(y))\" r=\"1.2\" fill=\"#4a7ab5\" fill-opacity=\"0.5\"/>"
                    }
                }
            }
        }
        return s + "</svg>"
    }

    /// Quantile bands (optional) along time with observed points over them.
    static func bandChart(_ band: BandSummary?, observed: Report.ObservedSeries?, predictive: Report.PredictiveBand?,
                          calendar: CalendarOrigin?, title: String) -> String {
        let width = 520.0, height = 260.0, left = 55.0, right = width - 15, top = 22.0, bottom = height - 35
        var xs: [Double] = [], ys: [Double] = []
        if let b = band { xs += b.time; ys += b.q05 + b.q95 }
        if let q = predictive, q.time != nil { ys += q.q05 + q.q95 }
        if let o = observed { xs += o.time; ys += o.value }
        let (xl, xh) = range(xs), (yl0, yh0) = range(ys)
        let margin = (yh0 - yl0) * 0.05
        let yl = yl0 - margin, yh = yh0 + margin
        func X(_ x: Double) -> Double { left + (x - xl) / (xh - xl) * (right - left) }
        func Y(_ y: Double) -> Double { bottom - (y - yl) / (yh - yl) * (bottom - top) }
        var s = "<svg width=\"\(p(width))\" height=\"\(p(height))\" role=\"img\" aria-label=\"\(esc(title))\">"
        s += "<text x=\"\(p(width / 2))\" y=\"14\" text-anchor=\"middle\">\(esc(title))</text>"
        s += "<line x1=\"\(p(left))\" x2=\"\(p(right))\" y1=\"\(p(bottom))\" y2=\"\(p(bottom))\" stroke=\"#333\"/>"
        s += "<line x1=\"\(p(left))\" x2=\"\(p(left))\" y1=\"\(p(top))\" y2=\"\(p(bottom))\" stroke=\"#333\"/>"
        for t in ticks(xl, xh) {
            s += "<text x=\"\(p(X(t)))\" y=\"\(p(bottom + 14))\" text-anchor=\"middle\">\(calendar.map { esc($0.label(t)) } ?? num(t))</text>"
        }
        for t in ticks(yl, yh) {
            s += "<text x=\"\(p(left - 4))\" y=\"\(p(Y(t) + 3))\" text-anchor=\"end\">\(num(t))</text>"
            s += "<line x1=\"\(p(left))\" x2=\"\(p(right))\" y1=\"\(p(Y(t)))\" y2=\"\(p(Y(t)))\" stroke=\"#eee\"/>"
        }
        let unit = calendar.map { _ in "date" } ?? band?.timeUnits.map { "time (\($0))" } ?? "time"
        s += "<text x=\"\(p((left + right) / 2))\" y=\"\(p(height - 4))\" text-anchor=\"middle\">\(esc(unit))</text>"
        if let b = band {
            func area(_ lo: [Double], _ hi: [Double], _ color: String) -> String {
                var pts = zip(b.time, hi).map { "\(p(X($0.0))),\(p(Y($0.1)))" }
                pts += zip(b.time, lo).reversed().map { "\(p(X($0.0))),\(p(Y($0.1)))" }
                return "<polygon points=\"\(pts.joined(separator: " "))\" fill=\"\(color)\"/>"
            }
            s += area(b.q05, b.q95, "#c6d9ef") + area(b.q25, b.q75, "#8fb3dd")
            s += "<polyline points=\"" + zip(b.time, b.q50).map { "\(p(X($0.0))),\(p(Y($0.1)))" }.joined(separator: " ")
            s += "\" fill=\"none\" stroke=\"#1f4e8c\" stroke-width=\"1.8\"/>"
        }
        if let q = predictive, let times = q.time {
            var pts = zip(times, q.q95).map { "\(p(X($0.0))),\(p(Y($0.1)))" }
            pts += zip(times, q.q05).reversed().map { "\(p(X($0.0))),\(p(Y($0.1)))" }
            s += "<polygon points=\"\(pts.joined(separator: " "))\" fill=\"#f5c28b\" fill-opacity=\"0.6\"/>"
            s += "<text x=\"\(p(right))\" y=\"\(p(top + 10))\" text-anchor=\"end\">predictive p = \(num(q.pValue))</text>"
        }
        if let o = observed {
            for (t, v) in zip(o.time, o.value) {
                s += "<circle cx=\"\(p(X(t)))\" cy=\"\(p(Y(v)))\" r=\"3\" fill=\"#c0392b\"/>"
            }
        }
        return s + "</svg>"
    }
}
