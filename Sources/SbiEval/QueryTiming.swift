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

/// Several files' queries timed one after another and as one batch (`QueryTiming.sirdBatch`).
public struct BatchTimingEntry: Codable, Sendable {
    public var files: Int
    public var samplesPerFile: Int
    public var tokens: Int
    public var separateSeconds: Double
    public var batchedSeconds: Double
    /// separateSeconds / batchedSeconds: above 1 when the batch is faster.
    public var speedup: Double

    enum CodingKeys: String, CodingKey {
        case files, tokens, speedup
        case samplesPerFile = "samples_per_file", separateSeconds = "separate_seconds", batchedSeconds = "batched_seconds"
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
        let m = try sirdModel(model)
        let plan = try sirdPlans(m, files: 1, method: method)[0]
        let answer = plan.answers[m.spec.offsets[3]]!
        let seconds = try timed {
            _ = try Sampler.sample(m, tokens: plan.tokens, plan.conditioning, count: 1000, settings: settings,
                                   key: RandomKey(seed: 79), threads: threads)
        }
        return QueryTimingEntry(name: "sird_posterior_1000_samples_beta_100_points", samples: 1000, tokens: plan.tokens.count,
                                sampler: settings.method.rawValue, samplerSteps: settings.steps,
                                networkEvaluations: settings.networkEvaluations, seconds: seconds, samplesPerSecond: 1000 / seconds,
                                model: model == nil ? "untrained large network (timing only)" : "trained",
                                method: answer.method, supportTimes: answer.supportTimes)
    }

    /// What sampling several files of one model and one token layout in one batch would save:
    /// `files` SIRD queries (each its own simulation, all observed at the same times), 1,000
    /// samples each, timed one after another and then as one call of files x 1,000 samples whose
    /// observed tokens take each file's values (`Conditioning.perSample`). The network's work per
    /// sample is the same either way; the batch saves only what a query costs besides it.
    public static func sirdBatch(model: ScoreModel?, settings: SamplerSettings, threads: Int?, files: Int,
                                 method: QueryMethod? = nil, progress: (String) -> Void = { _ in }) throws -> BatchTimingEntry {
        precondition(files >= 2, "a batch needs two files or more")
        let m = try sirdModel(model)
        let plans = try sirdPlans(m, files: files, method: method)
        let separate = try timed {
            for (k, plan) in plans.enumerated() {
                let seconds = try timed {
                    _ = try Sampler.sample(m, tokens: plan.tokens, plan.conditioning, count: 1000, settings: settings,
                                           key: RandomKey(seed: 79 + UInt64(k)), threads: threads)
                }
                progress(String(format: "file %d of %d on its own: %.2f s", k + 1, files, seconds))
            }
        }
        let batched = try timed {
            _ = try batchedSamples(m, plans, count: 1000, settings: settings, key: RandomKey(seed: 79), threads: threads)
        }
        progress(String(format: "%d files as one batch: %.2f s", files, batched))
        return BatchTimingEntry(files: files, samplesPerFile: 1000, tokens: plans[0].tokens.count,
                                separateSeconds: separate, batchedSeconds: batched, speedup: separate / batched)
    }

    /// `count` samples for each of several queries of one token layout, drawn in one call whose
    /// observed tokens take each query's values (`Conditioning.perSample`): the samples of query k
    /// are rows k * count ..< (k + 1) * count of the call, returned per query.
    public static func batchedSamples(_ m: ScoreModel, _ plans: [QueryPlan], count: Int, settings: SamplerSettings,
                                      key: RandomKey, threads: Int?) throws -> [[[Double]]] {
        guard let first = plans.first else { return [] }
        guard plans.allSatisfy({ $0.tokens == first.tokens && Set($0.observed.keys) == Set(first.observed.keys)
                                 && $0.constraints.isEmpty }) else {
            throw SbiError(.usage, "queries sampled as one batch need the same tokens, the same observed tokens and no constraints")
        }
        var batch = Conditioning()
        for node in first.observed.keys {
            batch.perSample[node] = plans.flatMap { [Double](repeating: $0.observed[node]!, count: count) }
        }
        let rows = try Sampler.sample(m, tokens: first.tokens, batch, count: count * plans.count, settings: settings,
                                      key: key, threads: threads)
        return (0..<plans.count).map { Array(rows[($0 * count)..<(($0 + 1) * count)]) }
    }

    /// The model timed: the given one, or a freshly initialised large network of today's SIRD spec.
    public static func sirdModel(_ model: ScoreModel?) throws -> ScoreModel {
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
        return m
    }

    /// One posterior query per simulation (seed 77, `files` of them): the three scalars and beta(t)
    /// on the 100 grid points, given every series at the same 20 random times (seed 78).
    public static func sirdPlans(_ m: ScoreModel, files: Int, method: QueryMethod?) throws -> [QueryPlan] {
        let rows = SIRDTask().simulate(count: files, key: RandomKey(seed: 77))
        var rng = RandomStream(seed: 78)
        let axis = SIRDTask.axis, offsets = m.spec.denseOffsets
        let times = (4...6).map { _ in (0..<20).map { _ in rng.uniform(axis.lower, axis.upper) }.sorted() }
        return try rows.map { row in
            var plan = QueryPlan(spec: m.spec)
            for v in 4...6 {
                let grid = row[offsets[v]..<(offsets[v] + axis.grid)]
                for t in times[v - 4] { try plan.observe(node: m.spec.offsets[v], time: t, value: axis.interpolate(grid, at: t)) }
            }
            for n in 0..<3 { try plan.target(node: n) }
            try plan.target(node: m.spec.offsets[3], times: (0..<100).map { axis.gridTime($0) }, method: method)
            return plan
        }
    }

    static func timed(_ body: () throws -> Void) rethrows -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }
}
