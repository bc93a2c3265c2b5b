// Denoising score matching on latent tokens with random condition masks (METHOD.md, "Training").
import Dispatch
import Foundation
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

public enum Trainer {
    /// Trains a new model on dense simulation rows (`spec.denseWidth` values each: fixed variables'
    /// values, and for each time-indexed variable its values on the dense grid).
    /// With a checkpoint policy, the run continues from the policy's file when it holds this run's
    /// state, saves there periodically and when asked to stop (then throws a `.temporary` error).
    /// The caller removes the file once the trained model is safely written.
    public static func train(spec: ModelSpec, simulations: [[Double]], settings: NetworkSettings,
                             config: TrainingConfig, checkpoint: CheckpointPolicy? = nil,
                             progress: (TrainingProgress) -> Void) throws -> (ScoreModel, TrainingReport) {
        let width = spec.denseWidth
        guard simulations.count >= 20 else {
            throw SbiError(.badInput, "only \(simulations.count) simulations; training needs at least 20",
                           hint: "simulate more (e.g. --budget 1000)")
        }
        for (r, row) in simulations.enumerated() {
            guard row.count == width else {
                throw SbiError(.badInput, "simulation \(r) has \(row.count) values, the model needs \(width)")
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

        let normalization = Normalization(fitting: trainRows, spec: spec)
        let tconfig = ScoreModel.transformerConfig(spec: spec, settings: settings)
        let transformer = Transformer(config: tconfig)
        let params = transformer.initialParameters(key: key.split(2))
        let model = ScoreModel(spec: spec, settings: settings, params: params, normalization: normalization)
        let maker = ExampleMaker(model: model)
        let trainData = trainRows.map(maker.normalize)
        let valData = valRows.map(maker.normalize)
        let steps = config.resolvedSteps(simulations: simulations.count)
        let schedule = LearningRateSchedule(peak: config.learningRate, final: config.finalLearningRate, totalSteps: steps)
        let adam = AdamOptimizer(layout: transformer.layout)
        let grads = Arena(layout: transformer.layout)
        let best = Arena(layout: transformer.layout)
        best.copy(from: params)

        let batchSize = config.batchSize, tokens = maker.maxTokens
        let runner = BatchParallel(model: transformer, capacity: batchSize, tokens: tokens, training: true, threads: config.threads)
        let batch = TokenBatch(capacity: batchSize, tokens: tokens)
        let objective = DenoisingObjective(model: model, batch: batch, maker: maker)

        // fixed validation draws: each validation row twice, with its own layout, t, noise and mask
        let valRepeat = 2
        let valCount = valData.count * valRepeat
        let valBatch = TokenBatch(capacity: min(valCount, batchSize), tokens: tokens)
        let valObjective = DenoisingObjective(model: model, batch: valBatch, maker: maker)
        let valRunner = BatchParallel(model: transformer, capacity: valBatch.capacity, tokens: tokens, training: false, threads: config.threads)
        func validationLoss() -> Double {
            var total = 0.0, start = 0
            var rng = RandomStream(key: key.split(3))
            while start < valCount {
                let n = min(valBatch.capacity, valCount - start)
                valBatch.batch = n
                for e in 0..<n { valObjective.draw(example: e, row: valData[(start + e) % valData.count], rng: &rng) }
                valRunner.forward(params, valBatch.view)
                total += valObjective.loss(start: 0, count: n, output: valRunner.output.base, dOutput: nil, normalizer: 1)
                start += n
            }
            return total / Double(valCount)
        }

        var rng = RandomStream(key: key.split(4))
        let clock = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        let t0 = clock()
        var lastReport = t0, lastSave = t0
        var ema = 0.0, bestVal = Double.infinity, bestStep = 0, overfitChecks = 0, lastVal: Double? = nil
        var stoppedEarly = false, step = 0, earlierSeconds = 0.0
        let checkEvery = max(50, steps / max(config.validationChecks, 1))

        let fingerprint = checkpoint.map { _ in
            TrainingCheckpoint.fingerprint(spec: spec, settings: settings, config: config, simulations: simulations)
        }
        let stateArenas = [params, best, adam.moments.0, adam.moments.1]
        if let checkpoint, FileManager.default.fileExists(atPath: checkpoint.path) {
            let scratch = (0..<4).map { _ in Arena(layout: transformer.layout) }
            let h = try TrainingCheckpoint.load(path: checkpoint.path, into: scratch) { h in
                guard h.fingerprint == fingerprint, h.stepsPlanned == steps else {
                    throw SbiError(.usage, "the training checkpoint \(checkpoint.path) belongs to another training run (other data, seed or settings)",
                                   hint: "run the command that started it, or delete \(checkpoint.path) (or give another --checkpoint) to start this one")
                }
            }
            guard (1..<steps).contains(h.step), h.adamStep == h.step, (0...h.step).contains(h.bestValidationStep),
                  (0...config.patience).contains(h.overfitChecks), h.rng.key == rng.key.raw, h.trainLossEMA.isFinite else {
                throw SbiError(.badInput, "the training checkpoint \(checkpoint.path) is damaged (inconsistent state at step \(h.step))",
                               hint: "delete \(checkpoint.path) to train from the start")
            }
            guard let restored = RandomStream(state: h.rng) else {
                throw SbiError(.badInput, "the training checkpoint \(checkpoint.path) is damaged (random state)",
                               hint: "delete \(checkpoint.path) to train from the start")
            }
            if h.sbiwatchVersion != sbiwatchVersion {
                checkpoint.log("warning: \(checkpoint.path) was written by sbiwatch \(h.sbiwatchVersion), this is \(sbiwatchVersion); the weights may differ from an uninterrupted run of either")
            }
            params.copy(from: scratch[0]); best.copy(from: scratch[1])
            adam.restore(step: h.adamStep, first: scratch[2], second: scratch[3])
            rng = restored
            step = h.step; ema = h.trainLossEMA; bestVal = h.bestValidationLoss ?? .infinity
            bestStep = h.bestValidationStep; overfitChecks = h.overfitChecks; lastVal = h.lastValidationLoss
            earlierSeconds = h.seconds
            checkpoint.log("resuming from \(checkpoint.path) at step \(step) of \(steps)")
        }
        let startStep = step
        func saveCheckpoint(_ policy: CheckpointPolicy) throws {
            let header = CheckpointHeader(
                fingerprint: fingerprint!, step: step, stepsPlanned: steps, adamStep: adam.step, rng: rng.state,
                trainLossEMA: ema, bestValidationLoss: bestVal.isFinite ? bestVal : nil, bestValidationStep: bestStep,
                overfitChecks: overfitChecks, lastValidationLoss: lastVal, seconds: earlierSeconds + clock() - t0,
                parameterCount: params.count, payloadChecksum: "", sbiwatchVersion: sbiwatchVersion)
            try TrainingCheckpoint.save(path: policy.path, header: header, arenas: stateArenas)
        }
        while step < steps && !stoppedEarly {
            if maker.timeNodes.isEmpty {
                for e in 0..<batchSize {
                    objective.draw(example: e, row: trainData[rng.int(below: trainData.count)], rng: &rng)
                }
            } else {
                // examples sorted by length, so each chunk is packed to a similar token count
                let drawn = (0..<batchSize).map { _ in maker.draw(trainData[rng.int(below: trainData.count)], &rng) }
                for (e, ex) in drawn.sorted(by: { $0.0.count < $1.0.count }).enumerated() {
                    objective.place(example: e, tokens: ex.0, clean: ex.1, rng: &rng)
                }
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
                let rate = Double(step - startStep) / (now - t0)
                progress(TrainingProgress(step: step, steps: steps, trainLoss: ema, validationLoss: lastVal,
                                          stepsPerSecond: rate, secondsLeft: Double(steps - step) / rate))
            }
            if let checkpoint, step < steps, !stoppedEarly {
                if checkpoint.stopRequested() {
                    try saveCheckpoint(checkpoint)
                    throw SbiError(.temporary, "training stopped at step \(step) of \(steps); its state is saved in \(checkpoint.path)",
                                   hint: "run the same command again to continue from step \(step)")
                }
                if now - lastSave >= checkpoint.everySeconds {
                    // a failed periodic save (disk full) costs only the protection, not the run
                    do {
                        try saveCheckpoint(checkpoint)
                        checkpoint.log("saved step \(step) to \(checkpoint.path)")
                    } catch {
                        checkpoint.log("warning: could not save the training state: \(error); training goes on")
                    }
                    lastSave = clock()
                }
            }
        }
        if stoppedEarly { params.copy(from: best) }
        let report = TrainingReport(steps: step, stepsPlanned: steps, finalTrainLoss: ema, bestValidationLoss: bestVal,
                                    bestValidationStep: bestStep, stoppedEarly: stoppedEarly,
                                    seconds: earlierSeconds + clock() - t0)
        return (model, report)
    }
}

/// Turns a normalised dense simulation row into one training example: which tokens, at which times,
/// with which clean values. Fixed nodes always appear. Each time-indexed variable is dropped entirely
/// with probability 0.1 (missing data), otherwise it gets 1...maxPoints tokens at sorted uniform
/// random times on its axis, with values interpolated linearly from the dense grid.
struct ExampleMaker: Sendable {
    let model: ScoreModel
    let spec: ModelSpec
    /// (node, dense column) of every fixed node
    let fixedNodes: [(Int, Int)]
    /// (node, axis, first dense column) of every time-indexed variable
    let timeNodes: [(Int, TimeAxis, Int)]
    let isDataNode: [Bool]
    let maxTokens: Int
    let fixedAllowed: [UInt8]
    static let dropProbability = 0.1

    init(model: ScoreModel) {
        self.model = model
        let spec = model.spec
        self.spec = spec
        let varOf = spec.variableOfNode, offsets = spec.denseOffsets, nodeOffsets = spec.offsets
        var fixed: [(Int, Int)] = [], timed: [(Int, TimeAxis, Int)] = []
        for node in 0..<spec.nodeCount {
            let v = varOf[node]
            if let axis = spec.variables[v].time { timed.append((node, axis, offsets[v])) }
            else { fixed.append((node, offsets[v] + node - nodeOffsets[v])) }
        }
        fixedNodes = fixed; timeNodes = timed
        isDataNode = (0..<spec.nodeCount).map { spec.variables[varOf[$0]].kind == .data }
        maxTokens = max(1, fixed.count + timed.reduce(0) { $0 + $1.1.maxPoints })
        fixedAllowed = model.masks.mask(for: spec.fixedLayout, kind: model.settings.mask)
    }

    /// Dense row in normalised units (each value by its node's mean and std), as Float.
    func normalize(_ row: [Double]) -> [Float] {
        var out = row.map { Float($0) }
        for (node, col) in fixedNodes { out[col] = Float(model.normalization.normalize(row[col], node: node)) }
        for (node, axis, first) in timeNodes {
            for k in 0..<axis.grid { out[first + k] = Float(model.normalization.normalize(row[first + k], node: node)) }
        }
        return out
    }

    /// Tokens and their clean (normalised) values for one example.
    func draw(_ row: [Float], _ rng: inout RandomStream) -> ([TokenRef], [Float]) {
        if timeNodes.isEmpty { return (spec.fixedLayout, fixedNodes.map { row[$0.1] }) }
        var tokens: [TokenRef] = [], values: [Float] = []
        for (node, col) in fixedNodes { tokens.append(TokenRef(node: node)); values.append(row[col]) }
        for (node, axis, first) in timeNodes {
            if rng.uniform() < ExampleMaker.dropProbability && !(tokens.isEmpty && node == timeNodes.last!.0) { continue }
            let k = 1 + rng.int(below: axis.maxPoints)
            let times = (0..<k).map { _ in rng.uniform(axis.lower, axis.upper) }.sorted()
            for t in times {
                tokens.append(TokenRef(node: node, time: t))
                values.append(Float(axis.interpolate(row[first..<(first + axis.grid)], at: t)))
            }
        }
        return (tokens, values)
    }
}

/// Draws noised training examples into one batch and evaluates the weighted denoising
/// score matching loss on them.
final class DenoisingObjective: @unchecked Sendable {
    let model: ScoreModel
    let batch: TokenBatch
    let maker: ExampleMaker
    let capacity: Int
    /// eps (examples, tokens): the noise added to each token
    let eps: FloatBuffer

    init(model: ScoreModel, batch: TokenBatch, maker: ExampleMaker) {
        self.model = model; self.batch = batch; self.maker = maker; capacity = batch.tokens
        eps = FloatBuffer(batch.capacity * batch.tokens)
        if maker.timeNodes.isEmpty {  // one layout for every example: fill it once
            for e in 0..<batch.capacity { model.fill(batch, example: e, tokens: model.spec.fixedLayout, allowed: maker.fixedAllowed) }
        }
    }

    /// Example e: a layout, t ~ U(1e-5, 1), a condition mask, x_t = mu(t) x_0 + sigma(t) eps on latent tokens.
    func draw(example e: Int, row: [Float], rng: inout RandomStream) {
        let (tokens, clean) = maker.draw(row, &rng)
        place(example: e, tokens: tokens, clean: clean, rng: &rng)
    }

    /// Example e with a given layout and clean values: t, condition mask and noise.
    func place(example e: Int, tokens: [TokenRef], clean: [Float], rng: inout RandomStream) {
        let sde = model.settings.sde
        if !maker.timeNodes.isEmpty {
            model.fill(batch, example: e, tokens: tokens, allowed: model.masks.mask(for: tokens, kind: model.settings.mask))
        }
        let t = rng.uniform(SDE.tMin, 1)
        batch.diffusionTime[e] = Float(t)
        let mu = Float(sde.mean(t)), sigma = Float(sde.std(t))
        let obs = batch.observed + e * capacity
        ConditionMaskSampler().sample(isData: tokens.map { maker.isDataNode[$0.node] }, into: obs, &rng)
        for i in 0..<tokens.count {
            let z = Float(rng.normal())
            eps.base[e * capacity + i] = z
            batch.values[e * capacity + i] = obs[i] != 0 ? clean[i] : mu * clean[i] + sigma * z
        }
    }

    /// For examples [start, start+count) with raw outputs out (count, tokens):
    /// sum_e lambda(t_e) sum_{latent i} (s_i - target_i)^2 / normalizer, s = out / max(sigma, 1e-3),
    /// target = -eps / sigma. Padding tokens are ignored. Writes d loss / d out when dOutput is given.
    func loss(start: Int, count: Int, output out: UnsafePointer<Float>, dOutput: UnsafeMutablePointer<Float>?,
              normalizer: Int) -> Double {
        let sde = model.settings.sde, d = capacity
        var total = 0.0
        let inv = 1 / Double(normalizer)
        for k in 0..<count {
            let e = start + k
            let t = Double(batch.diffusionTime[e])
            let sigma = sde.std(t), scale = model.outputScale(t), lambda = sde.lossWeight(t)
            let n = Int(batch.counts[e])
            var sum = 0.0
            for i in 0..<d {
                let r = k * d + i
                if i >= n || batch.observed[e * d + i] != 0 {
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
