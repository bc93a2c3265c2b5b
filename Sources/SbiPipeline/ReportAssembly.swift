// Stage 4 of the pipeline: the report of one file's draws: the verdict and its checks, summaries
// per parameter (with contraction and calibration cautions), bands per function and prediction,
// the observed points with their posterior predictive bands, and warnings in plain language.
import Foundation
import SbiArchive
import SbiChecks
import SbiCore
import SbiModel

extension Report {
    /// The report of `draws` of the file read as `read` (timings are filled in when the outputs are written).
    init(observation read: ReadObservation, draws: Draws, checks: FileChecks, input: InputFile, created: Date) {
        let obs = read.observation, request = draws.request
        let columns = SampledColumns(observation: obs)
        var warnings = obs.warnings
        var parameters = Self.scalarSummaries(columns, draws, spec: obs.plan.spec, warnings: &warnings)
        var (functions, predictions) = Self.bandSummaries(columns, draws, plan: obs.plan, warnings: &warnings)
        Self.annotate(&parameters, &functions, columns, checks: checks, spec: obs.plan.spec)
        self.init(
            created: Pipeline.iso(created),
            input: .init(file: input.fileName, sha256: input.sha256),
            model: .init(name: read.modelName, sha256: read.model.sha256, task: read.model.manifest.provenance.task,
                         modelsFile: read.modelsFile),
            sampler: .init(method: request.settings.method.rawValue, steps: request.settings.steps, samples: request.samples,
                           seed: request.seed, resampling: request.settings.resampling),
            parameters: parameters, functions: functions, predictions: predictions,
            observed: Self.observed(obs),
            constraints: obs.plan.plannedConstraints.isEmpty ? nil : obs.plan.plannedConstraints.map { c in
                ConstraintSummary(expression: c.expression, satisfied: rounded(c.fractionSatisfied(draws.rows)),
                                  satisfiedWithout: draws.unconstrained.map { rounded(c.fractionSatisfied($0)) })
            },
            posteriorPredictive: Self.predictiveBands(checks),
            diagnostics: .init(verdict: checks.verdict.level.rawValue, reasons: checks.verdict.reasons,
                               combinedPValue: checks.verdict.combinedPValue.map(rounded),
                               combination: checks.verdict.combination, checks: checks.checks.map(Self.roundedCheck),
                               warnings: warnings, notes: obs.notes),
            timingsSeconds: [:], sbiwatchVersion: SbiCore.sbiwatchVersion)
        if let free = draws.unconstrained {
            var ignored: [String] = []
            unconstrainedParameters = Self.scalarSummaries(columns, Draws(rows: free, request: request), spec: obs.plan.spec,
                                                           warnings: &ignored)
        }
    }

    /// Per sampled scalar (a parameter, or an element of a vector); warns when many samples leave the prior's range.
    static func scalarSummaries(_ columns: SampledColumns, _ draws: Draws, spec: ModelSpec,
                                warnings: inout [String]) -> [String: ScalarSummary] {
        var parameters: [String: ScalarSummary] = [:]
        for s in columns.scalars {
            let v = spec.variables[spec.variableIndex(named: s.variable)!]
            for (e, t) in zip(s.elements, s.tokens) {
                let label = v.size == 1 ? v.name : "\(v.name)[\(e)]"
                let summary = ScalarSummary(draws.rows.map { $0[t] }, support: v.support.map { ($0.lower, $0.upper) }, units: v.units)
                if let out = summary.outsideSupport, out > 0.1 {
                    warnings.append("\(Int((out * 100).rounded()))% of the samples of \(label) lie outside its prior range [\(num(v.support!.lower)), \(num(v.support!.upper))]: the observations may be unlike anything the simulator produces (misspecification), or the model is unsure here")
                }
                parameters[label] = summary
            }
        }
        return parameters
    }

    /// Bands of function-valued parameters and of predictions; warns when many values leave the prior's range.
    static func bandSummaries(_ columns: SampledColumns, _ draws: Draws, plan: QueryPlan,
                              warnings: inout [String]) -> (functions: [String: BandSummary], predictions: [String: BandSummary]) {
        var functions: [String: BandSummary] = [:], predictions: [String: BandSummary] = [:]
        let spec = plan.spec
        for f in columns.functions {
            let k = spec.variableIndex(named: f.variable)!, v = spec.variables[k]
            var band = BandSummary(time: f.query.modelTimes, columns: f.tokens.map { t in draws.rows.map { $0[t] } },
                                   timeUnits: v.time?.units, units: v.units)
            band.answeredBy = plan.answers[spec.nodes(of: k).lowerBound]
            if f.kind == .parameter { functions[f.variable] = band } else { predictions[f.variable] = band }
            if let sup = v.support {
                var outside = 0
                for d in draws.rows { for t in f.tokens where !sup.contains(d[t]) { outside += 1 } }
                let fraction = Double(outside) / Double(max(1, f.tokens.count * draws.rows.count))
                if fraction > 0.1 {
                    warnings.append("\(Int((fraction * 100).rounded()))% of the values of \(f.variable) lie outside its prior range [\(num(sup.lower)), \(num(sup.upper))]")
                }
            }
        }
        return (functions, predictions)
    }

    static func observed(_ obs: Observation) -> Observed {
        var series: [String: ObservedSeries] = [:]
        for s in obs.series { series[s.name] = .init(time: s.times.map(rounded), value: s.values.map(rounded)) }
        return Observed(series: series,
                        scalars: Dictionary(obs.scalars.map { ($0.0, rounded($0.1)) }, uniquingKeysWith: { a, _ in a }),
                        intervals: Dictionary(obs.intervals.map { ($0.0, [$0.1.isFinite ? $0.1 : nil, $0.2.isFinite ? $0.2 : nil]) },
                                              uniquingKeysWith: { a, _ in a }),
                        calendar: obs.calendar)
    }

    /// Contraction and calibration cautions on the parameter rows.
    static func annotate(_ parameters: inout [String: ScalarSummary], _ functions: inout [String: BandSummary],
                         _ columns: SampledColumns, checks: FileChecks, spec: ModelSpec) {
        let failed = checks.calibrationFailures
        func caution(_ names: [String]) -> String? {
            names.isEmpty ? nil : "the model's calibration failed for \(names.joined(separator: ", ")): its intervals may be too narrow or too wide"
        }
        for s in columns.scalars {
            let v = spec.variables[spec.variableIndex(named: s.variable)!]
            for (e, t) in zip(s.elements, s.tokens) {
                let label = v.size == 1 ? v.name : "\(v.name)[\(e)]"
                parameters[label]?.contraction = checks.contraction[t].map(rounded)
                parameters[label]?.calibrationCaution = caution(failed.filter { $0.name == label }.map(\.name))
            }
        }
        for f in columns.functions where f.kind == .parameter {
            let v = spec.variables[spec.variableIndex(named: f.variable)!]
            let c = f.tokens.map { checks.contraction[$0].map(rounded) }
            functions[f.variable]?.contraction = c.allSatisfy { $0 != nil } ? c.map { $0! } : nil
            functions[f.variable]?.priorRange = v.support.map { [$0.lower, $0.upper] }
            functions[f.variable]?.calibrationCaution = caution(failed.filter { $0.variable == f.variable }.map(\.name))
        }
    }

    static func predictiveBands(_ checks: FileChecks) -> [String: PredictiveBand] {
        var bands: [String: PredictiveBand] = [:]
        for series in checks.predictive {
            let stats = series.observed.indices.map { j in ScalarSummary(series.replicates.map { $0[j] }) }
            let p = checks.checks.first { $0.name == "posterior_predictive:\(series.variable)" }?.pValue ?? series.rawPValue
            bands[series.variable] = PredictiveBand(
                time: series.times.allSatisfy { $0 != nil } ? series.times.map { rounded($0!) } : nil,
                observed: series.observed.map(rounded), q05: stats.map(\.q05), q25: stats.map(\.q25), q50: stats.map(\.q50),
                q75: stats.map(\.q75), q95: stats.map(\.q95), pValue: rounded(p), replicates: series.replicates.count)
        }
        return bands
    }

    static func roundedCheck(_ c: Check) -> Check {
        var c = c
        c.statistic = c.statistic.map(SbiPipeline.rounded)
        c.pValue = c.pValue.map(SbiPipeline.rounded)
        return c
    }

}
