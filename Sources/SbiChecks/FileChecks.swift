// Every processed file checked against its model: out of distribution, posterior predictive per
// series, contraction per parameter, the model's own calibration, and the verdict of them all.
// The pipeline, `sbiwatch calibrate` and `bench misspecification` run this same code.
import Foundation
import SbiCore
import SbiModel

/// What a model carries for the checks (from its archive).
public struct TrustContext: @unchecked Sendable {
    public var model: ScoreModel
    public var calibration: ModelCalibration?
    public var reference: ReferenceSet?
    public init(model: ScoreModel, calibration: ModelCalibration?, reference: ReferenceSet?) {
        self.model = model; self.calibration = calibration; self.reference = reference
    }
}

public struct FileChecks: Sendable {
    public var checks: [Check]
    public var verdict: Verdict
    public var predictive: [PredictiveSeries]
    /// Completed-draw index of a reported parameter -> 1 - posterior variance / prior variance.
    public var contraction: [Int: Double]
    /// Raw posterior predictive p-value and design per data variable (what the calibration pass records).
    public var rawPredictive: [String: PredictiveNullCase]
    /// Scalars whose calibration failed (at the model's family level), for cautions on their rows.
    public var calibrationFailures: [ParameterCalibration]

    /// Checks `draws` (completed draws of `plan`) against the model of `context`; the predictive
    /// replicates use `settings` and `key`.
    /// `reported`: the draws the report summarises, when they differ from the checked `draws` (a file
    /// with constraints is checked with its free draws); the contraction is theirs.
    public static func run(_ context: TrustContext, plan: QueryPlan, draws: [[Double]], reported: [[Double]]? = nil,
                           settings: SamplerSettings, key: RandomKey, replicates: Int = PredictiveCheck.defaultReplicates,
                           threads: Int? = nil) throws -> FileChecks {
        var checks: [Check] = []
        if let ood = outOfDistribution(context, plan: plan) { checks.append(ood) }
        let predictive = try PredictiveCheck.run(model: context.model, plan: plan, draws: draws, replicates: replicates,
                                                 settings: settings, key: key, threads: threads) ?? []
        // the stored null holds for the pass's replicates and sampler; otherwise the raw (conservative) p is used
        let comparable = context.calibration.flatMap { c in
            c.measured && c.sampler == settings.method.rawValue && c.samplerSteps == settings.steps ? c : nil
        }
        var raw: [String: PredictiveNullCase] = [:]
        var allCalibrated = comparable != nil
        for series in predictive {
            raw[series.variable] = PredictiveNullCase(pValue: series.rawPValue, largestGap: series.largestGap,
                                                         trailingGap: series.trailingGap)
            let null = series.replicates.count == comparable?.replicates ? comparable : nil
            if null == nil { allCalibrated = false }
            checks.append(predictiveCheck(series, calibration: null))
        }
        // the held-out cases' smallest p-values under the same checks, when the file's were computed as theirs
        let tested = Set(checks.filter { $0.pValue != nil }.map(\.name))
        let nullMinima = allCalibrated ? comparable?.verdictNullMinima(for: tested) : nil
        let failures = context.calibration.map { $0.measured ? $0.failed() : [] } ?? []
        let verdict = Verdict(checks: checks, modelCautions: modelCautions(context, failures: failures), nullMinima: nullMinima)
        return FileChecks(checks: checks, verdict: verdict,
                          predictive: predictive, contraction: contraction(context, plan: plan, draws: reported ?? draws),
                          rawPredictive: raw, calibrationFailures: failures)
    }

    /// The out-of-distribution check on the exactly observed data of `plan`, when the model has references.
    static func outOfDistribution(_ context: TrustContext, plan: QueryPlan) -> Check? {
        let spec = plan.spec, varOf = spec.variableOfNode
        let observed = plan.observed.keys.sorted().filter { spec.variables[varOf[plan.tokens[$0].node]].kind == .data }
        guard let reference = context.reference, reference.rows.count > OutOfDistribution.neighbours, !observed.isEmpty else { return nil }
        let points = observed.map { DensePoint(token: plan.tokens[$0], spec: spec) }
        let (statistic, p) = OutOfDistribution.test(observed: observed.map { plan.observed[$0]! },
                                                    reference: reference.values(at: points, spec: spec))
        let detail = p < Verdict.checkThreshold
            ? "the observations are unlike the simulations the model was trained on: they lie farther from their nearest reference simulations than \(percent(1 - p)) of the references do (p = \(short(p))); check units, delays, noise and the model chosen"
            : "the observations lie as close to the reference simulations as most simulations do (p = \(short(p)))"
        return Check(name: ModelCalibration.outOfDistributionCheck, statistic: statistic, pValue: p, threshold: Verdict.checkThreshold, detail: detail)
    }

    static func predictiveCheck(_ series: PredictiveSeries, calibration: ModelCalibration?) -> Check {
        let calibrated = calibration?.calibratedPredictivePValue(series.rawPValue, variable: series.variable,
                                                                      largestGap: series.largestGap, trailingGap: series.trailingGap)
        let p = calibrated ?? series.rawPValue
        let kind = calibrated == nil ? "raw p" : "calibrated p"
        let detail = p < Verdict.checkThreshold
            ? "the model does not reproduce \(series.variable): data replicated from the posterior at the observed times are rarely as far from their mean as the observations (\(kind) = \(short(p)))"
            : "data replicated from the posterior reproduce \(series.variable) (\(kind) = \(short(p)))"
        return Check(name: ModelCalibration.predictiveCheckPrefix + series.variable, statistic: series.statistic, pValue: p,
                     threshold: Verdict.checkThreshold, detail: detail)
    }

    /// Reasons for caution that come from the model rather than the file.
    static func modelCautions(_ context: TrustContext, failures: [ParameterCalibration]) -> [String] {
        guard let calibration = context.calibration, calibration.measured else {
            return ["the model carries no calibration measurement, so how well its intervals cover the truth is unknown (add one with `sbiwatch calibrate`)"]
        }
        var cautions: [String] = []
        if !failures.isEmpty {
            cautions.append("the model's calibration failed for \(failures.map(\.name).joined(separator: ", ")) (\(failures.map(calibration.failure).joined(separator: "; "))): those intervals may be too narrow or too wide")
        }
        if context.reference == nil { cautions.append("the model carries no reference simulations, so the out-of-distribution check could not run") }
        return cautions
    }

    /// 1 - posterior variance / prior variance per reported parameter value (prior from the references).
    static func contraction(_ context: TrustContext, plan: QueryPlan, draws: [[Double]]) -> [Int: Double] {
        guard let reference = context.reference, reference.rows.count > 1, draws.count > 1 else { return [:] }
        let spec = plan.spec, varOf = spec.variableOfNode
        let targets = plan.targets.filter { spec.variables[varOf[plan.token($0).node]].kind == .parameter }
        let prior = reference.priorStandardDeviation(at: targets.map { DensePoint(token: plan.token($0), spec: spec) }, spec: spec)
        var out: [Int: Double] = [:]
        for (k, t) in targets.enumerated() where prior[k] > 0 {
            let sd = standardDeviation(draws.map { $0[t] })
            out[t] = 1 - (sd * sd) / (prior[k] * prior[k])
        }
        return out
    }
}

func short(_ x: Double) -> String { String(format: "%.2g", x) }
func percent(_ x: Double) -> String { "\(Int((x * 100).rounded(.down)))%" }
