// Dense query grids on held-out simulations (issue 20): each case is observed the way files come
// (20 times per series, up to a history cut), its function-valued parameters are queried on their
// whole dense grid and its data series forecast after the cut; the bands' coverage per time, the
// median path's smoothness against the prior's, and the time per case.
import Dispatch
import Foundation
import SbiCore
import SbiModel
import SbiTasks

/// Coverage of the central 50% and 90% bands of one queried variable, per query time.
public struct GridCoverage: Codable, Sendable {
    public var variable: String
    public var times: [Double]
    public var coverage50: [Double], coverage90: [Double]
    /// Largest |coverage - nominal| over the times.
    public var worstDeviation50: Double, worstDeviation90: Double
    /// One binomial standard error of a coverage at the nominal level, over the cases.
    public var standardError50: Double, standardError90: Double
    public var answeredBy: QueryAnswer?

    enum CodingKeys: String, CodingKey {
        case variable, times
        case coverage50 = "coverage_50", coverage90 = "coverage_90"
        case worstDeviation50 = "worst_deviation_50", worstDeviation90 = "worst_deviation_90"
        case standardError50 = "standard_error_50", standardError90 = "standard_error_90"
        case answeredBy = "answered_by"
    }
}

/// Mean |x[i+1] - 2 x[i] + x[i-1]| of paths on one grid: how rough a function looks on it.
public struct Smoothness: Codable, Sendable {
    public var variable: String
    /// Of each case's posterior median path (averaged over cases).
    public var posteriorMedian: Double
    /// Of single posterior draws (averaged over cases and draws).
    public var posteriorDraws: Double
    /// Of the prior's paths (the held-out simulations' own, on the same grid).
    public var prior: Double
    /// Of the pointwise median of as many prior paths as there are posterior draws per case (fresh
    /// simulations): the Monte Carlo kinks a median of that many exact draws has. A pointwise median
    /// follows different draws at different times, so it is rougher than the draws themselves
    /// unless there are many of them.
    public var priorMedian: Double

    enum CodingKeys: String, CodingKey {
        case variable, prior
        case posteriorMedian = "posterior_median", posteriorDraws = "posterior_draws", priorMedian = "prior_median"
    }

    public static func secondDifference(_ path: [Double]) -> Double {
        guard path.count >= 3 else { return 0 }
        var sum = 0.0
        for i in 1..<(path.count - 1) { sum += abs(path[i + 1] - 2 * path[i] + path[i - 1]) }
        return sum / Double(path.count - 2)
    }
}

public struct DenseGridReport: Codable, Sendable {
    public var task: String
    /// SHA-256 of the model archive, and the seed of the held-out simulations (nil in reports written
    /// before they were recorded, and in a pool of runs: see `seeds`).
    public var modelSHA256: String?
    public var seed: UInt64?
    /// A pooled report (`DenseGridPool`): how many runs it adds up, and their seeds when every run
    /// recorded its own; nil for a single run.
    public var runs: Int?
    public var seeds: [UInt64]?
    public var cases: Int, draws: Int
    /// "auto" (what files get) or "interpolate" (20 support times, asked for explicitly).
    public var method: String
    public var sampler: String, samplerSteps: Int
    public var historyEnd: Double
    public var coverage: [GridCoverage]
    public var smoothness: [Smoothness]
    public var secondsPerCase: Double
    public var tokensPerCase: Int

    enum CodingKeys: String, CodingKey {
        case task, cases, draws, method, sampler, coverage, smoothness, seed, seeds, runs
        case modelSHA256 = "model_sha256"
        case samplerSteps = "sampler_steps", historyEnd = "history_end"
        case secondsPerCase = "seconds_per_case", tokensPerCase = "tokens_per_case"
    }
}

/// One queried variable's tallies over the cases: hits of the 50% and 90% bands per time, and the
/// summed roughness of the median path, of single draws and of the true path.
struct GridTally {
    let variable: String, times: [Double], answer: QueryAnswer?
    var hits50: [Int], hits90: [Int]
    var medianRoughness = 0.0, drawRoughness = 0.0, priorRoughness = 0.0
    var cases = 0

    init(variable: String, times: [Double], answer: QueryAnswer?) {
        self.variable = variable; self.times = times; self.answer = answer
        hits50 = [Int](repeating: 0, count: times.count); hits90 = hits50
    }

    /// One case: columns (times, draws) of the variable's draws, truth (times) its true values.
    mutating func add(columns: [[Double]], truth: [Double]) {
        var median: [Double] = []
        for (i, y) in truth.enumerated() {
            let s = columns[i].sorted()
            median.append(quantile(s, 0.5))
            if y >= quantile(s, 0.25) && y <= quantile(s, 0.75) { hits50[i] += 1 }
            if y >= quantile(s, 0.05) && y <= quantile(s, 0.95) { hits90[i] += 1 }
        }
        let draws = columns.first?.count ?? 0
        medianRoughness += Smoothness.secondDifference(median)
        drawRoughness += (0..<draws).map { d in Smoothness.secondDifference(columns.map { $0[d] }) }.reduce(0, +) / Double(max(draws, 1))
        priorRoughness += Smoothness.secondDifference(truth)
        cases += 1
    }

    var coverage: GridCoverage {
        let n = Double(cases)
        let c50 = hits50.map { Double($0) / n }, c90 = hits90.map { Double($0) / n }
        return GridCoverage(variable: variable, times: times, coverage50: c50, coverage90: c90,
                            worstDeviation50: c50.map { abs($0 - 0.5) }.max() ?? 0,
                            worstDeviation90: c90.map { abs($0 - 0.9) }.max() ?? 0,
                            standardError50: (0.25 / n).squareRoot(), standardError90: (0.09 / n).squareRoot(),
                            answeredBy: answer)
    }

    /// The tallies' smoothness; `priorMedian` from `DenseGridCoverage.priorMedianRoughness`.
    func smoothness(priorMedian: Double) -> Smoothness {
        let n = Double(cases)
        return Smoothness(variable: variable, posteriorMedian: medianRoughness / n, posteriorDraws: drawRoughness / n,
                          prior: priorRoughness / n, priorMedian: priorMedian)
    }
}

public enum DenseGridCoverage {
    /// Where the history ends and how the forecast grid is spaced, per task: sird forecasts the 14
    /// days after day 36 on a daily grid; other tasks the last 28% of the domain at the grid spacing.
    static func forecastGrid(task: String, axis: TimeAxis) -> (end: Double, times: [Double]) {
        if task == "sird" { return (36, (37...50).map(Double.init)) }
        let end = axis.lower + 0.72 * (axis.upper - axis.lower)
        return (end, (0..<axis.grid).map(axis.gridTime).filter { $0 > end })
    }

    /// The query of one held-out dense row: every data series observed at 20 uniform times before the
    /// history's end and forecast after it; every function-valued parameter on its dense grid;
    /// scalar parameters targeted. Returns the plan and, per queried variable, (name, first
    /// reported index, true values).
    static func query(_ row: [Double], spec: ModelSpec, task: String, method: QueryMethod?,
                      rng: inout RandomStream) throws -> (QueryPlan, [(String, Int, [Double])]) {
        var plan = QueryPlan(spec: spec)
        var truths: [(String, Int, [Double])] = []
        let offsets = spec.denseOffsets
        for (k, v) in spec.variables.enumerated() {
            let node = spec.nodes(of: k).lowerBound
            guard let axis = v.time else {
                for n in spec.nodes(of: k) { try plan.target(node: n) }
                continue
            }
            let dense = row[offsets[k]..<(offsets[k] + axis.grid)]
            let times: [Double]
            if v.kind == .data {
                let (end, forecast) = forecastGrid(task: task, axis: axis)
                for t in (0..<TimeAxis.filePoints).map({ _ in rng.uniform(axis.lower, end) }).sorted() {
                    try plan.observe(node: node, time: t, value: axis.observe(dense, at: t, noise: v.noise, &rng))
                }
                times = forecast
            } else {
                times = (0..<axis.grid).map(axis.gridTime)
            }
            let first = plan.targets.count
            try plan.target(node: node, times: times, method: method)
            // a series' truth between grid points is an observation too (its noise restored)
            let truth = times.map { axis.observe(dense, at: $0, noise: v.kind == .data ? v.noise : nil, &rng) }
            truths.append((v.name, first, truth))
        }
        return (plan, truths)
    }

    /// Second difference of the pointwise median, over rows (dense simulations), of the dense path of
    /// variable k (time-indexed, with `grid` points).
    static func priorMedianRoughness(_ rows: [[Double]], variable k: Int, grid: Int, spec: ModelSpec) -> Double {
        let first = spec.denseOffsets[k]
        let median = (0..<grid).map { i in quantile(rows.map { $0[first + i] }.sorted(), 0.5) }
        return Smoothness.secondDifference(median)
    }

    public static func run(model: ScoreModel, task taskName: String, cases: Int, draws: Int, method: QueryMethod?,
                           settings: SamplerSettings, seed: UInt64, threads: Int?,
                           progress: (String) -> Void) throws -> DenseGridReport {
        let task = try TaskRegistry.task(named: taskName)
        let key = RandomKey(seed: seed)
        let rows = task.simulate(count: cases, key: key.split(1))
        var tallies: [String: GridTally] = [:]
        var seconds = 0.0, tokens = 0, lastReport = DispatchTime.now().uptimeNanoseconds
        for (c, row) in rows.enumerated() {
            var rng = RandomStream(key: key.split(2).split(UInt64(c)))
            let (plan, truths) = try query(row, spec: model.spec, task: taskName, method: method, rng: &rng)
            let t0 = DispatchTime.now().uptimeNanoseconds
            let raw = try Sampler.sample(model, tokens: plan.tokens, plan.conditioning, count: draws, settings: settings,
                                         key: key.split(3).split(UInt64(c)), threads: threads)
            let done = plan.complete(raw, noiseKey: key.split(4).split(UInt64(c)))
            seconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            tokens = plan.tokens.count
            let targets = plan.targets
            for (name, first, truth) in truths {
                let indices = (0..<truth.count).map { targets[first + $0] }
                if tallies[name] == nil {
                    let node = model.spec.nodes(of: model.spec.variableIndex(named: name)!).lowerBound
                    tallies[name] = GridTally(variable: name, times: indices.map { plan.token($0).time! }, answer: plan.answers[node])
                }
                tallies[name]!.add(columns: indices.map { i in done.map { $0[i] } }, truth: truth)
            }
            let now = DispatchTime.now().uptimeNanoseconds
            if now - lastReport > 5_000_000_000 || c + 1 == cases {
                lastReport = now
                progress("dense grids: \(c + 1)/\(cases) cases, \(String(format: "%.2f", seconds / Double(c + 1))) s per case")
            }
        }
        let coverage = tallies.keys.sorted().map { tallies[$0]!.coverage }
        // smoothness only means something for functions of time queried on a dense grid
        let functions = model.spec.variables.indices.filter { model.spec.variables[$0].isFunctionOfTime }
        let priorRows = functions.isEmpty ? [] : task.simulate(count: draws, key: key.split(5))
        let smoothness = functions.map { k in
            let v = model.spec.variables[k]
            return tallies[v.name]!.smoothness(priorMedian: priorMedianRoughness(priorRows, variable: k, grid: v.time!.grid, spec: model.spec))
        }
        return DenseGridReport(task: taskName, seed: seed, cases: cases, draws: draws, method: method == .interpolated ? "interpolate" : "auto",
                               sampler: settings.method.rawValue, samplerSteps: settings.steps,
                               historyEnd: model.spec.variables.compactMap(\.time).first.map { forecastGrid(task: taskName, axis: $0).end } ?? 0,
                               coverage: coverage, smoothness: smoothness, secondsPerCase: seconds / Double(cases), tokensPerCase: tokens)
    }
}
