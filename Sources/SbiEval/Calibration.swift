// Calibration on held-out simulations: how often the truth falls inside central credible intervals.
import Dispatch
import SbiCore
import SbiModel
import SbiTasks

public struct CoverageEntry: Codable, Sendable {
    public var name: String
    /// fraction of held-out simulations whose true value lies in the central 50% / 90% interval
    public var coverage50: Double
    public var coverage90: Double
    public var cases: Int

    enum CodingKeys: String, CodingKey {
        case name, cases
        case coverage50 = "coverage_50", coverage90 = "coverage_90"
    }
}

public struct CalibrationReport: Codable, Sendable {
    public var task: String
    public var simulations: Int
    public var samplesPerSimulation: Int
    public var observationsPerSeries: Int
    public var sampler: String
    public var samplerSteps: Int
    public var entries: [CoverageEntry]
    public var seconds: Double
    /// Largest |coverage - nominal| over all entries and both levels.
    public var worstDeviation: Double

    enum CodingKeys: String, CodingKey {
        case task, simulations, sampler, entries, seconds
        case samplesPerSimulation = "samples_per_simulation", observationsPerSeries = "observations_per_series"
        case samplerSteps = "sampler_steps", worstDeviation = "worst_deviation"
    }
}

public enum Calibration {
    /// For `count` fresh simulations of `task` (seeded apart from any training data): observe every data
    /// series at `perSeries` random times (fixed-size data variables: all values), sample the posterior
    /// of every scalar parameter and of each function-valued parameter at 3 random times, and record
    /// whether the truth lies in the central 50% and 90% intervals of the samples.
    public static func run(model: ScoreModel, task: any SimulationTask, count: Int, samples: Int, perSeries: Int,
                           settings: SamplerSettings, seed: UInt64, progress: (String) -> Void) throws -> CalibrationReport {
        let spec = model.spec, key = RandomKey(seed: seed)
        let rows = task.simulate(count: count, key: key.split(0xCA11B))
        var hits: [String: (Int, Int, Int)] = [:]  // name -> (in50, in90, cases)
        var order: [String] = []
        let t0 = DispatchTime.now().uptimeNanoseconds
        var lastReport = t0
        for (r, row) in rows.enumerated() {
            var rng = RandomStream(key: key.split(UInt64(r)))
            let (plan, truths) = try heldOutQuery(row, spec: spec, perSeries: perSeries, rng: &rng)
            let draws = try Sampler.sample(model, tokens: plan.tokens, plan.conditioning, count: samples, settings: settings,
                                           key: key.split(1_000_000 + UInt64(r)))
            for (name, token, truth) in truths {
                let values = draws.map { $0[token] }.sorted()
                func q(_ p: Double) -> Double { values[min(values.count - 1, max(0, Int((p * Double(values.count - 1)).rounded())))] }
                if hits[name] == nil { hits[name] = (0, 0, 0); order.append(name) }
                var h = hits[name]!
                if truth >= q(0.25) && truth <= q(0.75) { h.0 += 1 }
                if truth >= q(0.05) && truth <= q(0.95) { h.1 += 1 }
                h.2 += 1
                hits[name] = h
            }
            let now = DispatchTime.now().uptimeNanoseconds
            if Double(now - lastReport) / 1e9 >= 5 || r == count - 1 {
                lastReport = now
                progress("calibration: \(r + 1)/\(count) simulations")
            }
        }
        let entries = order.map { name -> CoverageEntry in
            let h = hits[name]!
            return CoverageEntry(name: name, coverage50: Double(h.0) / Double(h.2), coverage90: Double(h.1) / Double(h.2), cases: h.2)
        }
        let worst = entries.reduce(0.0) { max($0, abs($1.coverage50 - 0.5), abs($1.coverage90 - 0.9)) }
        return CalibrationReport(task: task.name, simulations: count, samplesPerSimulation: samples, observationsPerSeries: perSeries,
                                 sampler: settings.method.rawValue, samplerSteps: settings.steps, entries: entries,
                                 seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, worstDeviation: worst)
    }

    /// The query of one held-out simulation: every data series observed at `perSeries` random
    /// times (fixed data: every value), every scalar parameter and each function-valued parameter at
    /// 3 random times targeted; with the true value of every target (entry name, token, truth).
    static func heldOutQuery(_ row: [Double], spec: ModelSpec, perSeries: Int,
                             rng: inout RandomStream) throws -> (QueryPlan, [(String, Int, Double)]) {
        let offsets = spec.denseOffsets, nodeOffsets = spec.offsets
        var plan = QueryPlan(spec: spec)
        var truths: [(String, Int, Double)] = []
        for (v, variable) in spec.variables.enumerated() {
            let node = nodeOffsets[v]
            if let axis = variable.time {
                let grid = row[offsets[v]..<(offsets[v] + axis.grid)]
                if variable.kind == .data {
                    for t in (0..<perSeries).map({ _ in rng.uniform(axis.lower, axis.upper) }).sorted() {
                        try plan.observe(node: node, time: t, value: axis.interpolate(grid, at: t))
                    }
                } else {
                    let times = (0..<3).map { _ in rng.uniform(axis.lower, axis.upper) }
                    try plan.target(node: node, times: times)
                    for (k, t) in times.enumerated() {
                        truths.append(("\(variable.name)(t)", plan.tokens.count - times.count + k, axis.interpolate(grid, at: t)))
                    }
                }
                continue
            }
            for e in 0..<variable.size {
                if variable.kind == .data { try plan.observe(node: node + e, value: row[offsets[v] + e]); continue }
                try plan.target(node: node + e)
                let name = variable.size == 1 ? variable.name : "\(variable.name)[\(e)]"
                truths.append((name, plan.tokens.firstIndex { $0.node == node + e && $0.time == nil }!, row[offsets[v] + e]))
            }
        }
        return (plan, truths)
    }
}
