// Denoising score matching on latent tokens with random condition masks (METHOD.md, "Training").
import Dispatch
import SbiCore
import SbiModel

/// How to train (stored in the model's provenance).
public struct TrainingConfig: Codable, Hashable, Sendable {
    /// Optimiser steps; nil: clip(3 x simulations, 5,000, 100,000) as in the reference.
    public var steps: Int?
    public var batchSize: Int = 1000
    public var learningRate: Float = 1e-3
    public var finalLearningRate: Float = 1e-6
    public var validationFraction: Double = 0.05
    /// Evaluate the validation loss this many times over the run.
    public var validationChecks: Int = 100
    /// Early stopping (the reference's rule): stop once the validation loss has exceeded
    /// `overfitRatio` x the training loss at more than `patience` consecutive checks, and keep the
    /// weights with the lowest validation loss. A run that does not stop keeps its final weights,
    /// which have been through the whole learning-rate decay.
    public var patience: Int = 5
    public var overfitRatio: Double = 1.1
    public var seed: UInt64 = 0
    public var threads: Int?

    public init(steps: Int? = nil, seed: UInt64 = 0) { self.steps = steps; self.seed = seed }

    public func resolvedSteps(simulations: Int) -> Int {
        steps ?? min(max(3 * simulations, 5000), 100_000)
    }
}

/// What happened during training.
public struct TrainingReport: Codable, Hashable, Sendable {
    public var steps: Int
    public var stepsPlanned: Int
    public var finalTrainLoss: Double
    public var bestValidationLoss: Double
    public var bestValidationStep: Int
    public var stoppedEarly: Bool
    public var seconds: Double
}

/// One line of progress, reported every few seconds.
public struct TrainingProgress: Sendable {
    public var step: Int, steps: Int
    public var trainLoss: Double
    public var validationLoss: Double?
    public var stepsPerSecond: Double
    public var secondsLeft: Double

    public var line: String {
        let v = validationLoss.map { fmt($0, 4) } ?? "-"
        return "step \(step)/\(steps)  train \(fmt(trainLoss, 4))  val \(v)  \(fmt(stepsPerSecond, 1)) steps/s  ETA \(Int(secondsLeft.rounded()))s"
    }
}

func fmt(_ x: Double, _ digits: Int) -> String {
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    return String((x * p).rounded() / p)
}

public enum Trainer {
    /// Trains a new model on `simulations` (each row = all nodes of `spec`, in node order).
    public static func train(spec: ModelSpec, simulations: [[Double]], settings: NetworkSettings,
                             config: TrainingConfig, progress: (TrainingProgress) -> Void) throws -> (ScoreModel, TrainingReport) {
        let d = spec.nodeCount
        guard simulations.count >= 20 else {
            throw SbiError(.badInput, "only \(simulations.count) simulations; training needs at least 20",
                           hint: "simulate more (e.g. --budget 1000)")
        }
        for (r, row) in simulations.enumerated() {
            guard row.count == d else {
                throw SbiError(.badInput, "simulation \(r) has \(row.count) values, the model has \(d) nodes")
            }
            guard row.allSatisfy({ $0.isFinite }) else {
                throw SbiError(.badInput, "simulation \(r) contains NaN or infinite values",
                               hint: "remove failed simulations before training")
            }
        }
        let key = RandomKey(seed: config.seed)
        // validation split: a random 5%
        var splitRng = RandomStream(key: key.split(1))
        let order = splitRng.permutation(simulations.count)
        let nVal = max(1, Int(config.validationFraction * Double(simulations.count)))
        let valRows = order.prefix(nVal).map { simulations[$0] }
        let trainRows = order.dropFirst(nVal).map { simulations[$0] }

        let normalization = Normalization(fitting: trainRows)
        let trainData = trainRows.map { r in (0..<d).map { Float(normalization.normalize(r[$0], node: $0)) } }
        let valData = valRows.map { r in (0..<d).map { Float(normalization.normalize(r[$0], node: $0)) } }

        let tconfig = ScoreModel.transformerConfig(spec: spec, settings: settings)
        let transformer = Transformer(config: tconfig)
        let params = transformer.initialParameters(key: key.split(2))
        let model = ScoreModel(spec: spec, settings: settings, params: params, normalization: normalization)
        let steps = config.resolvedSteps(simulations: simulations.count)
        let schedule = LearningRateSchedule(peak: config.learningRate, final: config.finalLearningRate, totalSteps: steps)
        let adam = AdamOptimizer(layout: transformer.layout)
        let grads = Arena(layout: transformer.layout)
        let best = Arena(layout: transformer.layout)
        best.copy(from: params)

        let batchSize = config.batchSize
        let runner = BatchParallel(model: transformer, capacity: batchSize, tokens: d, training: true, threads: config.threads)
        let batch = TokenBatch(capacity: batchSize, tokens: d)
        model.prepare(batch)
        let objective = DenoisingObjective(model: model, batch: batch)
        let masks = ConditionMaskSampler(spec: spec)

        // fixed validation draws: each validation row twice, with its own t, noise and mask
        let valRepeat = 2
        let valCount = valData.count * valRepeat
        let valBatch = TokenBatch(capacity: min(valCount, batchSize), tokens: d)
        model.prepare(valBatch)
        let valObjective = DenoisingObjective(model: model, batch: valBatch)
        let valRunner = BatchParallel(model: transformer, capacity: valBatch.capacity, tokens: d, training: false, threads: config.threads)
        func validationLoss() -> Double {
            var total = 0.0, start = 0
            var rng = RandomStream(key: key.split(3))
            while start < valCount {
                let n = min(valBatch.capacity, valCount - start)
                valBatch.batch = n
                for e in 0..<n { valObjective.draw(example: e, data: valData[(start + e) % valData.count], masks: masks, rng: &rng) }
                valRunner.forward(params, valBatch.view)
                total += valObjective.loss(start: 0, count: n, output: valRunner.output.base, dOutput: nil, normalizer: 1)
                start += n
            }
            return total / Double(valCount)
        }

        var rng = RandomStream(key: key.split(4))
        let clock = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        let t0 = clock()
        var lastReport = t0
        var ema = 0.0, bestVal = Double.infinity, bestStep = 0, overfitChecks = 0, lastVal: Double? = nil
        var stoppedEarly = false, step = 0
        let checkEvery = max(50, steps / max(config.validationChecks, 1))
        while step < steps {
            for e in 0..<batchSize {
                objective.draw(example: e, data: trainData[rng.int(below: trainData.count)], masks: masks, rng: &rng)
            }
            grads.zero()
            let loss = runner.forwardBackward(params, grads, batch.view) { start, count, out, dout in
                objective.loss(start: start, count: count, output: out, dOutput: dout, normalizer: batchSize)
            }
            guard loss.isFinite else {
                throw SbiError(.internalError, "training diverged at step \(step) (loss \(loss))",
                               hint: "retry with another --seed or fewer --steps; report this if it persists")
            }
            adam.update(params, grads, learningRate: schedule.rate(at: step))
            ema = step == 0 ? loss : 0.98 * ema + 0.02 * loss
            step += 1
            if step % checkEvery == 0 || step == steps {
                let v = validationLoss()
                lastVal = v
                if v < bestVal {
                    bestVal = v; bestStep = step
                    best.copy(from: params)
                }
                overfitChecks = v > config.overfitRatio * ema ? overfitChecks + 1 : 0
                if overfitChecks > config.patience { stoppedEarly = true }
            }
            let now = clock()
            if now - lastReport >= 2 || step == steps || stoppedEarly {
                lastReport = now
                let rate = Double(step) / (now - t0)
                progress(TrainingProgress(step: step, steps: steps, trainLoss: ema, validationLoss: lastVal,
                                          stepsPerSecond: rate, secondsLeft: Double(steps - step) / rate))
            }
            if stoppedEarly { break }
        }
        if stoppedEarly { params.copy(from: best) }
        let report = TrainingReport(steps: step, stepsPlanned: steps, finalTrainLoss: ema, bestValidationLoss: bestVal,
                                    bestValidationStep: bestStep, stoppedEarly: stoppedEarly, seconds: clock() - t0)
        return (model, report)
    }
}

/// Draws noised training examples into one batch and evaluates the weighted denoising
/// score matching loss on them.
final class DenoisingObjective: @unchecked Sendable {
    let model: ScoreModel
    let batch: TokenBatch
    let d: Int
    /// eps (capacity, d): the noise added to each token
    let eps: FloatBuffer

    init(model: ScoreModel, batch: TokenBatch) {
        self.model = model; self.batch = batch; d = model.tokenCount
        eps = FloatBuffer(batch.capacity * d)
    }

    /// Example e: t ~ U(1e-5, 1), a condition mask, x_t = mu(t) x_0 + sigma(t) eps on latent tokens.
    func draw(example e: Int, data: [Float], masks: ConditionMaskSampler, rng: inout RandomStream) {
        let sde = model.settings.sde
        let t = rng.uniform(SDE.tMin, 1)
        batch.diffusionTime[e] = Float(t)
        let mu = Float(sde.mean(t)), sigma = Float(sde.std(t))
        let obs = batch.observed + e * d
        masks.sample(into: obs, &rng)
        for i in 0..<d {
            let z = Float(rng.normal())
            eps.base[e * d + i] = z
            batch.values[e * d + i] = obs[i] != 0 ? data[i] : mu * data[i] + sigma * z
        }
    }

    /// For examples [start, start+count) with raw outputs out (count, d):
    /// sum_e lambda(t_e) sum_{latent i} (s_i - target_i)^2 / normalizer, s = out / max(sigma, 1e-3),
    /// target = -eps / sigma. Writes d loss / d out into dOutput when given.
    func loss(start: Int, count: Int, output out: UnsafePointer<Float>, dOutput: UnsafeMutablePointer<Float>?,
              normalizer: Int) -> Double {
        let sde = model.settings.sde
        var total = 0.0
        let inv = 1 / Double(normalizer)
        for k in 0..<count {
            let e = start + k
            let t = Double(batch.diffusionTime[e])
            let sigma = sde.std(t), scale = model.outputScale(t), lambda = sde.lossWeight(t)
            var sum = 0.0
            for i in 0..<d {
                let r = k * d + i
                if batch.observed[e * d + i] != 0 {
                    dOutput?[r] = 0
                    continue
                }
                let diff = Double(out[r]) / scale + Double(eps.base[e * d + i]) / sigma
                sum += diff * diff
                dOutput?[r] = Float(lambda * 2 * diff / scale * inv)
            }
            total += lambda * sum * inv
        }
        return total
    }
}
