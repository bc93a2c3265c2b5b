// The cost of training at a given token density: optimiser steps per second of a real training
// run (`bench training`), so the price of answering dense grids is measured, not guessed.
import Dispatch
import SbiCore
import SbiModel

public struct TrainingTimingEntry: Codable, Sendable {
    /// Most tokens per time-indexed variable in an example (nil: the spec's own).
    public var maxPoints: Int?
    /// Mean and largest tokens per example.
    public var meanTokens: Double
    public var maxTokens: Int
    public var examplesPerChunk: Int
    public var stepsPerSecond: Double
    /// Hours for `plannedSteps` at this rate.
    public var hoursForPlannedSteps: Double

    enum CodingKeys: String, CodingKey {
        case maxPoints = "max_points", meanTokens = "mean_tokens", maxTokens = "max_tokens"
        case examplesPerChunk = "examples_per_chunk", stepsPerSecond = "steps_per_second"
        case hoursForPlannedSteps = "hours_for_planned_steps"
    }
}

public enum TrainingTiming {
    /// Times `steps` optimiser steps (after 2 untimed ones) of a training run on `simulations` with
    /// every time axis capped at `maxPoints`.
    public static func measure(spec given: ModelSpec, simulations: [[Double]], maxPoints: Int?, settings: NetworkSettings,
                               config: TrainingConfig, steps: Int, plannedSteps: Int) throws -> TrainingTimingEntry {
        let spec = try maxPoints.map(given.cappingMaxPoints) ?? given
        try TrainingData.check(simulations, width: spec.denseWidth)
        var timed = config
        timed.steps = steps + 2
        let run = TrainingRun(spec: spec, simulations: simulations, settings: settings, config: timed)
        for _ in 0..<2 { try run.trainOneStep() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<steps { try run.trainOneStep() }
        let rate = Double(steps) / (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        return TrainingTimingEntry(maxPoints: maxPoints, meanTokens: run.maker.expectedTokens, maxTokens: run.maker.maxTokens,
                                   examplesPerChunk: run.maker.chunkSize, stepsPerSecond: rate,
                                   hoursForPlannedSteps: Double(plannedSteps) / rate / 3600)
    }
}
