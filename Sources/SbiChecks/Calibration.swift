// The calibration pass on held-out simulations (calibration.json): per scalar parameter, and for
// function-valued parameters at a few fixed times, SBC ranks with the ECDF band test, coverage of
// central intervals, z-scores and contraction; per data variable, the null distribution of the raw
// posterior predictive p-value. Each case is observed the way files are: every series at a random
// number of random times, some with a gap or cut short (fixed-size data: every value), functions
// queried on an even grid.
import Dispatch
import Foundation
import SbiCore
import SbiModel

/// How big the pass is: cases, posterior draws per case, predictive replicates per case.
public struct CalibrationSize: Codable, Equatable, Sendable {
    public var cases: Int
    public var draws: Int
    public var replicates: Int
    public init(cases: Int, draws: Int = 100, replicates: Int = PredictiveCheck.defaultReplicates) {
        self.cases = cases; self.draws = draws; self.replicates = replicates
    }
    /// Reference simulations stored for the out-of-distribution check.
    public static let references = 500
    /// Default cases: what fits in `share` of the training time at the measured cost per case, within [minimum, maximum].
    public static func defaultCases(trainingSeconds: Double, secondsPerCase: Double, share: Double = 0.1,
                                    minimum: Int = 20, maximum: Int = 1000) -> Int {
        let fits = Int((share * trainingSeconds / max(secondsPerCase, 1e-6)).rounded(.down))
        return min(max(fits, minimum), maximum)
    }
}

public enum Calibration {
    /// Where a case's truth is read and the query token that estimates it.
    public struct Target { public var name: String; var variable: String; var time: Double?; var token: Int; var truth: Double }

    /// Per-case results: truth ranks and moments per target name, raw predictive p-values per data variable.
    struct Tally {
        var order: [Target] = []
        var ranks: [String: [Int]] = [:], covered: [String: [Int: Int]] = [:]
        var z: [String: [Double]] = [:], posteriorVariance: [String: [Double]] = [:], truths: [String: [Double]] = [:]
        var predictive: [String: [PredictiveNullCase]] = [:]
        var verdict: [VerdictNullCase] = []
    }

    public static let design = "every data series at a uniformly random number of times between half its trained maximum and the maximum, at uniform random times over its domain, with an interior gap of 10-30% of the domain left out, or over the first 60-90% of the domain only (a third each; fixed-size data: every value); function-valued parameters queried at their trained maximum of evenly spaced times; the predictive null matched to a file on its series' largest and trailing gaps"

    /// Measures the calibration of `model` on `heldOut` (dense rows never used in training).
    public static func measure(_ context: TrustContext, heldOut: [[Double]], size: CalibrationSize, settings: SamplerSettings,
                               seed: UInt64, source: String, threads: Int? = nil,
                               progress: (String) -> Void) throws -> ModelCalibration {
        let t0 = DispatchTime.now().uptimeNanoseconds
        var tally = Tally(), last = t0
        for (r, row) in heldOut.enumerated() {
            try measureCase(context, row: row, index: r, size: size, settings: settings, seed: seed, threads: threads, into: &tally)
            let now = DispatchTime.now().uptimeNanoseconds
            if Double(now - last) / 1e9 >= 10 || r == heldOut.count - 1 {
                last = now
                progress("calibration: \(r + 1)/\(heldOut.count) held-out simulations")
            }
        }
        let parameters = tally.order.map { summarize($0, tally, draws: size.draws) }
        var report = ModelCalibration(status: "measured", note: nil, cases: heldOut.count, draws: size.draws, replicates: size.replicates,
                                      source: source, design: design, seed: seed, sampler: settings.method.rawValue,
                                      samplerSteps: settings.steps, seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9,
                                      parameters: parameters, predictiveNull: tally.predictive.mapValues { $0.map(\.pValue).sorted() },
                                      predictiveNullCases: tally.predictive, verdictNull: tally.verdict)
        if settings.usesNoiseLevels { report.samplerSigmaLow = settings.sigmaLow; report.samplerSigmaHigh = settings.sigmaHigh }
        return report
    }

    /// Seconds one case takes (measured on `row`), for sizing the pass.
    public static func secondsPerCase(_ context: TrustContext, row: [Double], size: CalibrationSize, settings: SamplerSettings,
                                      threads: Int? = nil) throws -> Double {
        var tally = Tally()
        let t0 = DispatchTime.now().uptimeNanoseconds
        try measureCase(context, row: row, index: 0, size: size, settings: settings, seed: 0, threads: threads, into: &tally)
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    static func measureCase(_ context: TrustContext, row: [Double], index r: Int, size: CalibrationSize, settings: SamplerSettings,
                            seed: UInt64, threads: Int?, into tally: inout Tally) throws {
        let key = RandomKey(seed: seed).split(0xCA11B0)
        var rng = RandomStream(key: key.split(UInt64(r)))
        let (plan, targets) = try heldOutQuery(row, spec: context.model.spec, rng: &rng)
        let draws = try Sampler.sample(context.model, tokens: plan.tokens, plan.conditioning, count: size.draws, settings: settings,
                                       key: key.split(1_000_000 + UInt64(r)), threads: threads)
        guard draws.allSatisfy({ $0.allSatisfy(\.isFinite) }) else {
            throw SbiError(.internalError, "the sampler produced a non-finite value for held-out simulation \(r)",
                           hint: "report this with the model; try another --seed meanwhile")
        }
        for target in targets { record(target, values: draws.map { $0[target.token] }, into: &tally) }
        let checks = try FileChecks.run(context, plan: plan, draws: draws, settings: settings, key: key.split(2_000_000 + UInt64(r)),
                                        replicates: size.replicates, threads: threads)
        for (variable, p) in checks.rawPredictive { tally.predictive[variable, default: []].append(p) }
        let ood = checks.checks.first { $0.name == ModelCalibration.outOfDistributionCheck }?.pValue
        tally.verdict.append(VerdictNullCase(outOfDistribution: ood, predictive: checks.rawPredictive))
    }

    static func record(_ target: Target, values: [Double], into tally: inout Tally) {
        let name = target.name
        if tally.ranks[name] == nil { tally.order.append(target) }
        let sorted = values.sorted(), n = Double(values.count)
        tally.ranks[name, default: []].append(values.filter { $0 < target.truth }.count)
        for level in ModelCalibration.levels {
            let tail = (1 - Double(level) / 100) / 2
            let inside = target.truth >= quantile(sorted, tail) && target.truth <= quantile(sorted, 1 - tail)
            tally.covered[name, default: [:]][level, default: 0] += inside ? 1 : 0
        }
        let mean = values.reduce(0, +) / n
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / max(n - 1, 1)
        tally.z[name, default: []].append((mean - target.truth) / max(variance.squareRoot(), 1e-300))
        tally.posteriorVariance[name, default: []].append(variance)
        tally.truths[name, default: []].append(target.truth)
    }

    static func summarize(_ target: Target, _ tally: Tally, draws: Int) -> ParameterCalibration {
        let name = target.name, ranks = tally.ranks[name]!, cases = Double(ranks.count)
        var coverage: [String: Double] = [:], se: [String: Double] = [:]
        for level in ModelCalibration.levels {
            let c = Double(level) / 100
            coverage["\(level)"] = Double(tally.covered[name]![level] ?? 0) / cases
            se["\(level)"] = (c * (1 - c) / cases).squareRoot()
        }
        let z = tally.z[name]!, truths = tally.truths[name]!
        let zMean = z.reduce(0, +) / cases
        let zSD = (z.reduce(0) { $0 + ($1 - zMean) * ($1 - zMean) } / max(cases - 1, 1)).squareRoot()
        let tMean = truths.reduce(0, +) / cases
        let priorVariance = truths.reduce(0) { $0 + ($1 - tMean) * ($1 - tMean) } / max(cases - 1, 1)
        let contraction = tally.posteriorVariance[name]!.reduce(0) { $0 + 1 - $1 / max(priorVariance, 1e-300) } / cases
        return ParameterCalibration(name: name, variable: target.variable, time: target.time, coverage: coverage,
                                    coverageStandardError: se, sbc: RankUniformity.test(ranks: ranks, draws: draws),
                                    meanZScore: zMean, sdZScore: zSD, contraction: contraction, priorSD: priorVariance.squareRoot())
    }
}
