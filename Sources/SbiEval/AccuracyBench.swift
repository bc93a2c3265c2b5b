// `sbiwatch bench --accuracy`: train on each task at a simulation budget, then C2ST of the
// posterior against reference samples for several observations.
import Dispatch
import SbiCore
import SbiModel
import SbiTasks

public struct AccuracyEntry: Codable, Sendable {
    public var task: String
    public var simulations: Int
    public var trainingSteps: Int
    public var trainingSeconds: Double
    public var mask: String
    /// The network's `Parametrisation` (noise or edm).
    public var parametrisation: String
    public var sampler: String
    public var samplerSteps: Int
    /// Network evaluations per sample of the sampler.
    public var networkEvaluations: Int
    /// edm's stochastic churn (0 for the other samplers).
    public var churn: Double
    /// The noise-level samplers' last level before 0 (nil for the t-grid samplers).
    public var sigmaLow: Double?
    /// The noise-level samplers' first level when set below the SDE's largest (nil otherwise).
    public var sigmaHigh: Double?
    public var observations: Int
    public var samplesPerObservation: Int
    /// sbibm's recipe (MLP classifier, TASKS.md), per observation and its mean.
    public var c2st: [Double]
    public var c2stMean: Double
    /// The random-forest C2ST the published Simformer figures were computed with (RandomForestC2ST.swift).
    public var c2stRandomForest: [Double]
    public var c2stRandomForestMean: Double
    public var samplingSeconds: Double
    public var samplesPerSecond: Double
    /// The published Simformer figure (undirected, METHOD.md) at the run's budget when it is 10^3,
    /// 10^4 or 10^5 simulations, a random-forest C2ST; nil at other budgets.
    public var publishedC2st: Double?

    enum CodingKeys: String, CodingKey {
        case task, simulations, mask, parametrisation, sampler, observations, c2st
        case trainingSteps = "training_steps", trainingSeconds = "training_seconds", samplerSteps = "sampler_steps"
        case networkEvaluations = "network_evaluations", churn, sigmaLow = "sigma_low", sigmaHigh = "sigma_high"
        case samplesPerObservation = "samples_per_observation", c2stMean = "c2st_mean"
        case c2stRandomForest = "c2st_rf", c2stRandomForestMean = "c2st_rf_mean"
        case samplingSeconds = "sampling_seconds", samplesPerSecond = "samples_per_second"
        case publishedC2st = "published_c2st"
    }
}

public enum AccuracyBench {
    /// The published undirected Simformer C2ST per task at 10^3 / 10^4 / 10^5 simulations (METHOD.md).
    public static let published: [String: [Int: Double]] = [
        "gaussian_linear": [1000: 0.54, 10_000: 0.51, 100_000: 0.50],
        "gaussian_mixture": [1000: 0.57, 10_000: 0.52, 100_000: 0.50],
        "two_moons": [1000: 0.61, 10_000: 0.53, 100_000: 0.51],
        "slcp": [1000: 0.83, 10_000: 0.65, 100_000: 0.57],
    ]

    /// The observations: observation k has theta_k ~ prior and x_k = simulator(theta_k), from seed key.split(k).
    public static func observations(task: any SimulationTask, count: Int, key: RandomKey) -> [(theta: [Double], x: [Double])] {
        let thetaNodes = task.spec.nodes(kind: .parameter), xNodes = task.spec.nodes(kind: .data)
        return task.simulate(count: count, key: key).map { row in (thetaNodes.map { row[$0] }, xNodes.map { row[$0] }) }
    }

    /// C2ST of `model`'s posterior on `task` over `observations` observations, one entry per
    /// sampler in `samplers` (every sampler against the same reference samples and observations).
    public static func evaluate(model: ScoreModel, task: any SimulationTask, trainingSteps: Int, trainingSeconds: Double,
                                simulations: Int, observations count: Int, samples: Int, samplers: [SamplerSettings],
                                seed: UInt64, threads: Int = 2, progress: (String) -> Void) throws -> [AccuracyEntry] {
        let key = RandomKey(seed: seed)
        let obs = observations(task: task, count: count, key: key.split(7))
        let thetaNodes = task.spec.nodes(kind: .parameter), xNodes = task.spec.nodes(kind: .data)
        var scores = [[Double]](repeating: [], count: samplers.count), forestScores = scores
        var samplingSeconds = [Double](repeating: 0, count: samplers.count)
        for (k, o) in obs.enumerated() {
            let reference = ReferencePosterior.sample(task: task, observation: o.x, thetaTrue: o.theta, count: samples,
                                                      key: key.split(1000 + UInt64(k)))
            var observed: [Int: Double] = [:]
            for (n, v) in zip(xNodes, o.x) { observed[n] = v }
            for (j, sampler) in samplers.enumerated() {
                let t0 = DispatchTime.now().uptimeNanoseconds
                let draws = try Sampler.sample(model, Conditioning(observed: observed), count: samples, settings: sampler,
                                               key: key.split(2000 + UInt64(k)))
                samplingSeconds[j] += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                let posterior = draws.map { d in thetaNodes.map { d[$0] } }
                let c = C2ST.score(reference: reference, samples: posterior, seed: 1)
                let forest = C2ST.scoreRandomForest(reference: reference, samples: posterior, seed: 1, threads: threads)
                scores[j].append(c)
                forestScores[j].append(forest)
                progress("\(task.name): observation \(k + 1)/\(count), \(sampler.method.rawValue) \(sampler.steps) steps (\(sampler.networkEvaluations) evaluations\(sampler.sigmaHigh.map { ", from level \($0)" } ?? "")): C2ST \(String(format: "%.3f", c)) (random forest \(String(format: "%.3f", forest)))")
            }
        }
        return samplers.indices.map { j in
            let sampler = samplers[j]
            return AccuracyEntry(task: task.name, simulations: simulations, trainingSteps: trainingSteps,
                                 trainingSeconds: trainingSeconds, mask: model.settings.mask.rawValue,
                                 parametrisation: model.settings.resolvedParametrisation.rawValue, sampler: sampler.method.rawValue, samplerSteps: sampler.steps,
                                 networkEvaluations: sampler.networkEvaluations, churn: sampler.usesNoiseLevels ? sampler.churn : 0,
                                 sigmaLow: sampler.usesNoiseLevels ? sampler.sigmaLow : nil,
                                 sigmaHigh: sampler.usesNoiseLevels ? sampler.sigmaHigh : nil,
                                 observations: count, samplesPerObservation: samples, c2st: scores[j], c2stMean: mean(scores[j]),
                                 c2stRandomForest: forestScores[j], c2stRandomForestMean: mean(forestScores[j]),
                                 samplingSeconds: samplingSeconds[j] / Double(count),
                                 samplesPerSecond: Double(samples * count) / samplingSeconds[j],
                                 publishedC2st: published[task.name]?[simulations])
        }
    }

    static func mean(_ xs: [Double]) -> Double { xs.reduce(0, +) / Double(max(xs.count, 1)) }
}

import Foundation
