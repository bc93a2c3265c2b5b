// Wall time of a realistic time-series query (issue: SIRD posterior with beta(t) on a 100-point grid).
import Dispatch
import SbiCore
import SbiModel
import SbiTasks

public struct QueryTimingEntry: Codable, Sendable {
    public var name: String
    public var samples: Int
    public var tokens: Int
    public var sampler: String
    public var samplerSteps: Int
    /// Network evaluations per sample of the sampler.
    public var networkEvaluations: Int
    public var seconds: Double
    public var samplesPerSecond: Double
    public var model: String
    /// How beta(t)'s 100 points were answered: `direct`, or `interpolated` between `supportTimes`.
    public var method: QueryMethod
    public var supportTimes: Int

    enum CodingKeys: String, CodingKey {
        case name, samples, tokens, seconds, model, sampler, method
        case supportTimes = "support_times"
        case samplerSteps = "sampler_steps", samplesPerSecond = "samples_per_second"
        case networkEvaluations = "network_evaluations"
    }
}

public enum QueryTiming {
    /// 1,000 posterior samples of the SIRD parameters and beta(t) on 100 grid points, given 20
    /// observation times per series; the grid is answered as files' grids are: directly by a model
    /// trained with up to 100 times per variable (163 tokens), at 20 support times by the earlier
    /// models (83 tokens). The time does not depend on the weights: without a trained model a freshly
    /// initialised large network of today's SIRD spec (up to 100 times) is timed. `method` forces
    /// one way (`.interpolated`: 20 support times, what a user trades accuracy for speed with).
    public static func sird(model: ScoreModel?, settings: SamplerSettings, threads: Int?,
                            method: QueryMethod? = nil) throws -> QueryTimingEntry {
        let task = SIRDTask()
        let m = model ?? {
            let settings = NetworkSettings(preset: .large)
            let t = Transformer(config: ScoreModel.transformerConfig(spec: task.spec, settings: settings))
            let n = task.spec.nodeCount
            return ScoreModel(spec: task.spec, settings: settings, params: t.initialParameters(key: RandomKey(seed: 1)),
                              normalization: Normalization(mean: [Double](repeating: 0, count: n), std: [Double](repeating: 1, count: n)))
        }()
        let names = m.spec.variables.map(\.name), sirdNames = task.spec.variables.map(\.name)
        guard names == sirdNames else {
            throw SbiError(.usage, "the query is timed on a SIRD model (variables \(sirdNames.joined(separator: ", "))), but the model given has \(names.joined(separator: ", "))",
                           hint: "give a SIRD model, e.g. fixtures/models/sird.sbim, or none to time an untrained network")
        }
        let row = task.simulate(count: 1, key: RandomKey(seed: 77))[0]
        var plan = QueryPlan(spec: m.spec)
        var rng = RandomStream(seed: 78)
        let axis = SIRDTask.axis, offsets = m.spec.denseOffsets
        for v in 4...6 {
            let grid = row[offsets[v]..<(offsets[v] + axis.grid)]
            for t in (0..<20).map({ _ in rng.uniform(axis.lower, axis.upper) }).sorted() {
                try plan.observe(node: m.spec.offsets[v], time: t, value: axis.interpolate(grid, at: t))
            }
        }
        for n in 0..<3 { try plan.target(node: n) }
        try plan.target(node: m.spec.offsets[3], times: (0..<100).map { axis.gridTime($0) }, method: method)
        let answer = plan.answers[m.spec.offsets[3]]!
        let t0 = DispatchTime.now().uptimeNanoseconds
        _ = try Sampler.sample(m, tokens: plan.tokens, plan.conditioning, count: 1000, settings: settings,
                               key: RandomKey(seed: 79), threads: threads)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return QueryTimingEntry(name: "sird_posterior_1000_samples_beta_100_points", samples: 1000, tokens: plan.tokens.count,
                                sampler: settings.method.rawValue, samplerSteps: settings.steps,
                                networkEvaluations: settings.networkEvaluations, seconds: seconds, samplesPerSecond: 1000 / seconds,
                                model: model == nil ? "untrained large network (timing only)" : "trained",
                                method: answer.method, supportTimes: answer.supportTimes)
    }
}
