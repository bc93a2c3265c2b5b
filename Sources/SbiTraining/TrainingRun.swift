// One training run: the split, the network and its optimiser, the loop with validation and early
// stopping, and the state a checkpoint saves and restores. The same seed, data and settings give
// the same weights, whether or not the run was interrupted and resumed.
import Dispatch
import Foundation
import SbiCore
import SbiModel

/// Checks of the simulation rows before anything is allocated.
enum TrainingData {
    static func check(_ simulations: [[Double]], width: Int) throws {
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
    }
}

final class TrainingRun {
    let spec: ModelSpec, settings: NetworkSettings, config: TrainingConfig
    let key: RandomKey
    let model: ScoreModel
    let maker: ExampleMaker
    let trainData: [[Float]]
    let steps: Int
    let params: Arena, best: Arena, grads: Arena
    let adam: AdamOptimizer
    let schedule: LearningRateSchedule
    let runner: BatchParallel, batch: TokenBatch, objective: DenoisingObjective
    let validation: ValidationSet

    // the state a checkpoint holds (with the arenas)
    var rng: RandomStream
    var step = 0, ema = 0.0, bestVal = Double.infinity, bestStep = 0, overfitChecks = 0
    var lastVal: Double? = nil, stoppedEarly = false, earlierSeconds = 0.0
    let t0: Double
    /// The run's identity in a checkpoint (computed only when a checkpoint is used).
    private let fingerprintOf: () -> String
    lazy var fingerprint: String = fingerprintOf()

    static func clock() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// The split (a random 5% for validation), the normalisation fitted on the training rows, and
    /// fresh weights (or a copy of `initial`, fine-tuning a trained network of the same layout); keys:
    /// 1 split, 2 weights, 3 validation draws, 4 training stream.
    init(spec: ModelSpec, simulations: [[Double]], settings: NetworkSettings, config: TrainingConfig, initial: Arena? = nil) {
        self.spec = spec; self.settings = settings; self.config = config
        key = RandomKey(seed: config.seed)
        var splitRng = RandomStream(key: key.split(1))
        let order = splitRng.permutation(simulations.count)
        let nVal = max(1, Int(config.validationFraction * Double(simulations.count)))
        let valRows = order.prefix(nVal).map { simulations[$0] }
        let trainRows = order.dropFirst(nVal).map { simulations[$0] }

        let bounds = (config.boundedParameters ?? .raw).bounds(spec)
        let normalization = Normalization(fitting: trainRows, spec: spec, logit: bounds)
        let transformer = Transformer(config: ScoreModel.transformerConfig(spec: spec, settings: settings))
        params = transformer.initialParameters(key: key.split(2))
        if let initial {
            precondition(initial.layout == params.layout, "initial weights do not match the network layout")
            params.copy(from: initial)
        }
        model = ScoreModel(spec: spec, settings: settings, params: params, normalization: normalization)
        maker = ExampleMaker(model: model, seriesNoise: config.seriesNoise ?? .restored,
                             functionTokens: config.functionTokens ?? .logUniform, forecastShare: config.forecastMasks ?? 0)
        trainData = trainRows.map(maker.normalize)
        steps = config.resolvedSteps(simulations: simulations.count)
        schedule = LearningRateSchedule(peak: config.learningRate, final: config.finalLearningRate, totalSteps: steps)
        adam = AdamOptimizer(layout: transformer.layout)
        grads = Arena(layout: transformer.layout)
        best = Arena(layout: transformer.layout)
        best.copy(from: params)

        runner = BatchParallel(model: transformer, capacity: config.batchSize, tokens: maker.maxTokens, training: true,
                               threads: config.threads, chunkSize: maker.chunkSize)
        batch = TokenBatch(capacity: config.batchSize, tokens: maker.maxTokens)
        objective = DenoisingObjective(model: model, batch: batch, maker: maker, lossWeights: config.lossWeights ?? .tokens)
        validation = ValidationSet(model: model, transformer: transformer, maker: maker, rows: valRows.map(maker.normalize),
                                   batchSize: config.batchSize, threads: config.threads, key: key.split(3),
                                   lossWeights: config.lossWeights ?? .tokens)
        rng = RandomStream(key: key.split(4))
        fingerprintOf = { TrainingCheckpoint.fingerprint(spec: spec, settings: settings, config: config, simulations: simulations) }
        t0 = Self.clock()
    }

    var stateArenas: [Arena] { [params, best, adam.moments.0, adam.moments.1] }

    var summary: TrainingSummary {
        TrainingSummary(steps: step, stepsPlanned: steps, batchSize: config.batchSize, finalTrainLoss: ema,
                        bestValidationLoss: bestVal, bestValidationStep: bestStep, stoppedEarly: stoppedEarly,
                        seconds: earlierSeconds + Self.clock() - t0)
    }

    /// Runs steps until the planned number or early stopping; with a policy, saves periodically and
    /// stops (saving) when asked. Keeps the best weights when it stopped early.
    func train(checkpoint: CheckpointPolicy?, progress: (TrainingProgress) -> Void) throws {
        let startStep = step, checkEvery = max(50, steps / max(config.validationChecks, 1))
        var lastReport = t0, lastSave = t0
        while step < steps && !stoppedEarly {
            try trainOneStep()
            if step % checkEvery == 0 || step == steps { validate() }
            let now = Self.clock()
            if now - lastReport >= 2 || step == steps || stoppedEarly {
                lastReport = now
                let rate = Double(step - startStep) / (now - t0)
                progress(TrainingProgress(step: step, steps: steps, trainLoss: ema, validationLoss: lastVal,
                                          stepsPerSecond: rate, secondsLeft: Double(steps - step) / rate))
            }
            if let checkpoint, step < steps, !stoppedEarly {
                try honour(checkpoint, now: now, lastSave: &lastSave)
            }
        }
        if stoppedEarly { params.copy(from: best) }
    }

    /// One optimiser step on a fresh batch.
    func trainOneStep() throws {
        drawBatch()
        grads.zero()
        let objective = self.objective, batchSize = config.batchSize
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
    }

    /// Draws the batch's examples; with time-indexed variables sorted by length, so each chunk is
    /// packed to a similar token count.
    func drawBatch() {
        let batchSize = config.batchSize
        if maker.timeNodes.isEmpty {
            for e in 0..<batchSize {
                objective.draw(example: e, row: trainData[rng.int(below: trainData.count)], rng: &rng)
            }
            return
        }
        let drawn = (0..<batchSize).map { _ in maker.draw(trainData[rng.int(below: trainData.count)], &rng) }
        for (e, ex) in drawn.sorted(by: { $0.0.count < $1.0.count }).enumerated() {
            objective.place(example: e, tokens: ex.0, clean: ex.1, rng: &rng)
        }
    }

    /// The validation check: keeps the best weights; early stopping (the reference's rule) once the
    /// validation loss exceeded overfitRatio x the training loss at more than `patience` checks in a row.
    func validate() {
        let v = validation.loss(params)
        lastVal = v
        if v < bestVal {
            bestVal = v; bestStep = step
            best.copy(from: params)
        }
        overfitChecks = v > config.overfitRatio * ema ? overfitChecks + 1 : 0
        if overfitChecks > config.patience { stoppedEarly = true }
    }

    /// Saves and stops when a stop was requested; saves when the period has passed.
    func honour(_ checkpoint: CheckpointPolicy, now: Double, lastSave: inout Double) throws {
        if checkpoint.stopRequested() {
            try save(checkpoint)
            throw SbiError(.temporary, "training stopped at step \(step) of \(steps); its state is saved in \(checkpoint.path)",
                           hint: "run the same command again to continue from step \(step)")
        }
        guard now - lastSave >= checkpoint.everySeconds else { return }
        // a failed periodic save (disk full) costs only the protection, not the run
        do {
            try save(checkpoint)
            checkpoint.log("saved step \(step) to \(checkpoint.path)")
        } catch {
            checkpoint.log("warning: could not save the training state: \(error); training goes on")
        }
        lastSave = Self.clock()
    }

    func save(_ policy: CheckpointPolicy) throws {
        let header = CheckpointHeader(
            fingerprint: fingerprint, step: step, stepsPlanned: steps, adamStep: adam.step, rng: rng.state,
            trainLossEMA: ema, bestValidationLoss: bestVal.isFinite ? bestVal : nil, bestValidationStep: bestStep,
            overfitChecks: overfitChecks, lastValidationLoss: lastVal, seconds: earlierSeconds + Self.clock() - t0,
            parameterCount: params.count, payloadChecksum: "", sbiwatchVersion: sbiwatchVersion)
        try TrainingCheckpoint.save(path: policy.path, header: header, arenas: stateArenas)
    }

    /// Continues from the policy's file when it exists: it must hold this run's state, consistent.
    func resumeIfSaved(_ checkpoint: CheckpointPolicy) throws {
        guard FileManager.default.fileExists(atPath: checkpoint.path) else { return }
        let scratch = (0..<4).map { _ in Arena(layout: params.layout) }
        let h = try TrainingCheckpoint.load(path: checkpoint.path, into: scratch) { h in
            guard h.fingerprint == fingerprint, h.stepsPlanned == steps else {
                throw SbiError(.usage, "the training checkpoint \(checkpoint.path) belongs to another training run (other data, seed or settings)",
                               hint: "run the command that started it, or delete \(checkpoint.path) (or give another --checkpoint) to start this one")
            }
        }
        let restored = try checkConsistent(h, path: checkpoint.path)
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

    /// The header's state makes sense for this run; returns its random stream.
    private func checkConsistent(_ h: CheckpointHeader, path: String) throws -> RandomStream {
        guard (1..<steps).contains(h.step), h.adamStep == h.step, (0...h.step).contains(h.bestValidationStep),
              (0...config.patience).contains(h.overfitChecks), h.rng.key == rng.key.raw, h.trainLossEMA.isFinite else {
            throw SbiError(.badInput, "the training checkpoint \(path) is damaged (inconsistent state at step \(h.step))",
                           hint: "delete \(path) to train from the start")
        }
        guard let restored = RandomStream(state: h.rng) else {
            throw SbiError(.badInput, "the training checkpoint \(path) is damaged (random state)",
                           hint: "delete \(path) to train from the start")
        }
        return restored
    }
}

/// Fixed validation draws: each validation row twice, with its own layout, t, noise and mask
/// (the same stream at every check, so checks compare like with like).
final class ValidationSet {
    static let repeats = 2
    let rows: [[Float]]
    let batch: TokenBatch
    let objective: DenoisingObjective
    let runner: BatchParallel
    let key: RandomKey

    init(model: ScoreModel, transformer: Transformer, maker: ExampleMaker, rows: [[Float]], batchSize: Int, threads: Int?, key: RandomKey,
         lossWeights: LossWeights = .tokens) {
        self.rows = rows; self.key = key
        batch = TokenBatch(capacity: min(rows.count * Self.repeats, batchSize), tokens: maker.maxTokens)
        objective = DenoisingObjective(model: model, batch: batch, maker: maker, lossWeights: lossWeights)
        runner = BatchParallel(model: transformer, capacity: batch.capacity, tokens: maker.maxTokens, training: false,
                               threads: threads, chunkSize: maker.chunkSize)
    }

    /// The mean denoising loss of the weights `params` over every validation draw.
    func loss(_ params: Arena) -> Double {
        let count = rows.count * Self.repeats
        var total = 0.0, start = 0
        var rng = RandomStream(key: key)
        while start < count {
            let n = min(batch.capacity, count - start)
            batch.batch = n
            for e in 0..<n { objective.draw(example: e, row: rows[(start + e) % rows.count], rng: &rng) }
            runner.forward(params, batch.view)
            total += objective.loss(start: 0, count: n, output: runner.output.base, dOutput: nil, normalizer: 1)
            start += n
        }
        return total / Double(count)
    }
}
