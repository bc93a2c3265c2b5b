// Several `bench dense-grid` runs of one model on different held-out cases (different seeds), as one
// report over all their cases: "within 0.05 at every time" needs about 1,000 cases, more than one
// run on a shared core takes comfortably.
import Foundation
import SbiCore

public enum DenseGridPool {
    /// The reports (each with the file it came from, for errors) as one: coverage per time from the
    /// summed band hits, standard errors at the total count, smoothness and time per case weighted
    /// by cases. Refuses runs of different models or query designs and runs that share a seed.
    public static func pool(_ runs: [(file: String, report: DenseGridReport)]) throws -> DenseGridReport {
        guard let (firstFile, first) = runs.first else { throw SbiError(.usage, "nothing to pool", hint: "give --pool RUN.json...") }
        var seen: [UInt64: String] = [:]
        for (file, r) in runs {
            try checkWhole(r, file: file)
            try checkSameDesign(r, as: first, file: file, firstFile: firstFile)
            for seed in r.seeds ?? r.seed.map { [$0] } ?? [] {
                if let other = seen[seed] {
                    throw SbiError(.usage, "\(file) and \(other) both hold the cases of seed \(seed): pooling them would count those cases twice",
                                   hint: "pool runs made with different --seed values")
                }
                seen[seed] = file
            }
        }
        let total = runs.reduce(0) { $0 + $1.report.cases }
        func weighted(_ value: (DenseGridReport) -> Double) -> Double {
            runs.reduce(0) { $0 + value($1.report) * Double($1.report.cases) } / Double(total)
        }
        var pooled = first
        pooled.cases = total
        pooled.seed = nil
        pooled.runs = runs.reduce(0) { $0 + ($1.report.runs ?? 1) }
        pooled.seeds = runs.allSatisfy { $0.report.seed != nil || $0.report.seeds != nil } ? seen.keys.sorted() : nil
        pooled.modelSHA256 = runs.lazy.compactMap(\.report.modelSHA256).first
        pooled.secondsPerCase = weighted(\.secondsPerCase)
        pooled.coverage = first.coverage.indices.map { k in
            pooledCoverage(runs.map { ($0.report.coverage[k], $0.report.cases) }, total: total)
        }
        pooled.smoothness = first.smoothness.indices.map { k in
            var m = first.smoothness[k]
            m.posteriorMedian = weighted { $0.smoothness[k].posteriorMedian }
            m.posteriorDraws = weighted { $0.smoothness[k].posteriorDraws }
            m.prior = weighted { $0.smoothness[k].prior }
            m.priorMedian = weighted { $0.smoothness[k].priorMedian }
            return m
        }
        return pooled
    }

    /// One variable's coverage over runs of (coverage, cases): hits summed (each run's coverage times
    /// its cases is a count), divided by all the cases.
    static func pooledCoverage(_ parts: [(GridCoverage, Int)], total: Int) -> GridCoverage {
        var c = parts[0].0
        let n = Double(total)
        func sum(_ values: (GridCoverage) -> [Double]) -> [Double] {
            c.times.indices.map { i in parts.reduce(0) { $0 + values($1.0)[i] * Double($1.1) }.rounded() / n }
        }
        c.coverage50 = sum(\.coverage50)
        c.coverage90 = sum(\.coverage90)
        c.worstDeviation50 = c.coverage50.map { abs($0 - 0.5) }.max() ?? 0
        c.worstDeviation90 = c.coverage90.map { abs($0 - 0.9) }.max() ?? 0
        c.standardError50 = (0.25 / n).squareRoot()
        c.standardError90 = (0.09 / n).squareRoot()
        return c
    }

    /// A run's own figures fit together: cases counted, one coverage per time and level, each a fraction.
    static func checkWhole(_ r: DenseGridReport, file: String) throws {
        let whole = r.cases >= 1 && r.coverage.allSatisfy { c in
            c.coverage50.count == c.times.count && c.coverage90.count == c.times.count
                && (c.coverage50 + c.coverage90).allSatisfy { (0...1).contains($0) }
        }
        guard whole else {
            throw SbiError(.badInput, "\(file) is not a whole bench dense-grid run (no cases, or coverages that do not match its times)",
                           hint: "give the files `bench dense-grid MODEL --json` wrote, unedited")
        }
    }

    /// The same model (when both record it), task, sampler, draws, query design and query times.
    static func checkSameDesign(_ r: DenseGridReport, as first: DenseGridReport, file: String, firstFile: String) throws {
        func differ(_ what: String, _ a: String, _ b: String) -> SbiError {
            SbiError(.usage, "\(file) and \(firstFile) differ in \(what) (\(a) against \(b)): they are not runs of one design",
                     hint: "pool only runs of the same model, sampler, --draws and --method, with different --seed values")
        }
        if let a = r.modelSHA256, let b = first.modelSHA256, a != b { throw differ("model", a, b) }
        if r.task != first.task { throw differ("task", r.task, first.task) }
        if r.method != first.method { throw differ("method", r.method, first.method) }
        if r.sampler != first.sampler || r.samplerSteps != first.samplerSteps {
            throw differ("sampler", "\(r.sampler) \(r.samplerSteps)", "\(first.sampler) \(first.samplerSteps)")
        }
        if r.draws != first.draws { throw differ("draws", "\(r.draws)", "\(first.draws)") }
        let names = { (x: DenseGridReport) in x.coverage.map(\.variable).joined(separator: ", ") }
        let sameTimes = r.coverage.count == first.coverage.count && zip(r.coverage, first.coverage).allSatisfy { a, b in
            a.variable == b.variable && a.times.count == b.times.count && zip(a.times, b.times).allSatisfy { abs($0 - $1) < 1e-9 }
        }
        if !sameTimes { throw differ("queried variables or times", names(r), names(first)) }
        if r.smoothness.map(\.variable) != first.smoothness.map(\.variable) { throw differ("functions", names(r), names(first)) }
    }
}
