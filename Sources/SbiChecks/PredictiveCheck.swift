// The posterior predictive check: replicated data at the file's own observation times, drawn from
// the model's likelihood conditional given each of the first M posterior draws (one diffusion run,
// every replicate conditioned on its own parameter draw), compared with the observations series by
// series through a chi-square discrepancy. Its raw p-value (the share of replicates at least as
// discrepant) is conservative; `ModelCalibration.predictiveNull` turns it into a calibrated one.
import Foundation
import SbiCore
import SbiModel

/// The check of one observed data variable.
public struct PredictiveSeries: Sendable {
    public var variable: String
    /// Observation times (time series) or nil per point (elements of a fixed-size variable).
    public var times: [Double?]
    public var observed: [Double]
    /// replicates[m][j]: replicate m at point j
    public var replicates: [[Double]]
    /// sum_j ((y_j - mean_j) / sd_j)^2 of the observations, mean and sd over the replicates
    public var statistic: Double
    /// (1 + #{replicates with a statistic >= the observations'}) / (M + 1)
    public var rawPValue: Double
    /// The longest stretch of the series' time domain without an observation (ends included), as a
    /// share of the domain; 0 for a fixed-size variable. The stored null is matched on it.
    public var largestGap: Double
    /// The stretch of the domain after the last observation, as a share; 0 for a fixed-size variable.
    public var trailingGap: Double
}

/// The stretch of [lower, upper] after the last of `times`, as a share (1 without times).
public func trailingGap(_ times: [Double], lower: Double, upper: Double) -> Double {
    guard upper > lower else { return 0 }
    guard let last = times.max() else { return 1 }
    return min(max((upper - last) / (upper - lower), 0), 1)
}

/// The design of a series: the longest stretch of [lower, upper] without one of `times`, as a share.
public func largestGap(_ times: [Double], lower: Double, upper: Double) -> Double {
    guard upper > lower else { return 0 }
    let sorted = times.sorted()
    guard let first = sorted.first, let last = sorted.last else { return 1 }
    var gap = max(first - lower, upper - last)
    for (a, b) in zip(sorted, sorted.dropFirst()) { gap = max(gap, b - a) }
    return min(max(gap / (upper - lower), 0), 1)
}

public enum PredictiveCheck {
    /// Replicates per file.
    public static let defaultReplicates = 100

    /// Replicates every exactly observed data token of `plan` given each of the first `replicates`
    /// rows of `draws` (completed draws of `plan.tokens`); nil when nothing is observed exactly.
    public static func run(model: ScoreModel, plan: QueryPlan, draws: [[Double]], replicates: Int,
                           settings: SamplerSettings, key: RandomKey, threads: Int? = nil) throws -> [PredictiveSeries]? {
        let spec = plan.spec, varOf = spec.variableOfNode
        let isParameter = { (i: Int) in spec.variables[varOf[plan.tokens[i].node]].kind == .parameter }
        let parameters = plan.tokens.indices.filter(isParameter)
        let data = plan.observed.keys.filter { !isParameter($0) }.sorted()
        let count = min(replicates, draws.count)
        guard !data.isEmpty, count >= 10 else { return nil }
        let layout = (parameters + data).map { plan.tokens[$0] }
        var perSample: [Int: [Double]] = [:]
        for (k, i) in parameters.enumerated() { perSample[k] = draws.prefix(count).map { $0[i] } }
        var sampling = settings
        sampling.resampling = 0
        let rows = try Sampler.sample(model, tokens: layout, Conditioning(perSample: perSample), count: count,
                                      settings: sampling, key: key, threads: threads)
        var byVariable: [Int: [Int]] = [:]   // variable -> positions in `data`
        for (k, i) in data.enumerated() { byVariable[varOf[plan.tokens[i].node], default: []].append(k) }
        return byVariable.keys.sorted().map { v in
            let positions = byVariable[v]!.sorted { (plan.tokens[data[$0]].time ?? 0) < (plan.tokens[data[$1]].time ?? 0) }
            let observed = positions.map { plan.observed[data[$0]]! }
            let reps = rows.map { row in positions.map { row[parameters.count + $0] } }
            let (statistic, p) = discrepancy(observed: observed, replicates: reps)
            let times = positions.map { plan.tokens[data[$0]].time }
            let observedTimes = times.compactMap { $0 }, domain = spec.variables[v].time
            let gap = domain.map { largestGap(observedTimes, lower: $0.lower, upper: $0.upper) } ?? 0
            let trailing = domain.map { trailingGap(observedTimes, lower: $0.lower, upper: $0.upper) } ?? 0
            return PredictiveSeries(variable: spec.variables[v].name, times: times, observed: observed, replicates: reps,
                                    statistic: statistic, rawPValue: p, largestGap: gap, trailingGap: trailing)
        }
    }

    /// The chi-square discrepancy of `observed` (points) against `replicates` (M, points) and its
    /// raw posterior predictive p-value.
    static func discrepancy(observed: [Double], replicates: [[Double]]) -> (Double, Double) {
        let m = Double(replicates.count), points = observed.count
        var mean = [Double](repeating: 0, count: points), inverseSD = [Double](repeating: 0, count: points)
        for j in 0..<points {
            let column = replicates.map { $0[j] }
            mean[j] = column.reduce(0, +) / m
            let sd = standardDeviation(column)
            inverseSD[j] = 1 / max(sd, 1e-6 * abs(mean[j]), 1e-12)
        }
        func chiSquare(_ y: [Double]) -> Double {
            (0..<points).reduce(0.0) { s, j in let z = (y[j] - mean[j]) * inverseSD[j]; return s + z * z }
        }
        let statistic = chiSquare(observed)
        let atLeast = replicates.filter { chiSquare($0) >= statistic }.count
        return (statistic, Double(1 + atLeast) / (m + 1))
    }
}
