// Stage 3 of the pipeline: the report of one file's draws: summaries per parameter, bands per
// function and prediction, the observed points, and warnings in plain language.
import Foundation
import SbiArchive
import SbiCore
import SbiModel

extension Report {
    /// The report of `draws` of the file read as `read` (timings are filled in when the outputs are written).
    init(observation read: ReadObservation, draws: Draws, input: InputFile, created: Date) {
        let obs = read.observation, request = draws.request
        let columns = SampledColumns(observation: obs)
        var warnings = obs.warnings
        let parameters = Self.scalarSummaries(columns, draws, spec: obs.plan.spec, warnings: &warnings)
        let (functions, predictions) = Self.bandSummaries(columns, draws, spec: obs.plan.spec, warnings: &warnings)
        self.init(
            created: Pipeline.iso(created),
            input: .init(file: input.fileName, sha256: input.sha256),
            model: .init(name: read.modelName, sha256: read.model.sha256, task: read.model.manifest.provenance.task,
                         modelsFile: read.modelsFile),
            sampler: .init(method: request.settings.method.rawValue, steps: request.settings.steps, samples: request.samples,
                           seed: request.seed, resampling: request.settings.resampling),
            parameters: parameters, functions: functions, predictions: predictions,
            observed: Self.observed(obs),
            diagnostics: .init(warnings: warnings, notes: obs.notes),
            timingsSeconds: [:], sbiwatchVersion: SbiCore.sbiwatchVersion)
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
    static func bandSummaries(_ columns: SampledColumns, _ draws: Draws, spec: ModelSpec,
                              warnings: inout [String]) -> (functions: [String: BandSummary], predictions: [String: BandSummary]) {
        var functions: [String: BandSummary] = [:], predictions: [String: BandSummary] = [:]
        for f in columns.functions {
            let v = spec.variables[spec.variableIndex(named: f.variable)!]
            let band = BandSummary(time: f.query.modelTimes, columns: f.tokens.map { t in draws.rows.map { $0[t] } },
                                   timeUnits: v.time?.units, units: v.units)
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
                                              uniquingKeysWith: { a, _ in a }))
    }
}
