// Denoising score matching on latent tokens with random condition masks (METHOD.md, "Training").
import Dispatch
import Foundation
import SbiCore
import SbiModel

/// How a parameter whose prior has a bounded support (e.g. sird's beta(t) in (0, 1)) is presented
/// to the network: raw, z-scored like any value, or through the logit of its place in the support
/// (`LogitBounds`), so samples stay inside it and mass against a bound becomes a smooth tail;
/// `logitFunctions` transforms function-valued parameters only and leaves bounded scalars raw (sird:
/// its scalars' posteriors came out too wide through the logit, README "Dense query grids").
public enum BoundedParameters: String, Codable, Sendable, CaseIterable {
    case raw, logit
    case logitFunctions = "logit-functions"

    /// The logit bounds per node of `spec` this choice gives, or nil for none (raw).
    public func bounds(_ spec: ModelSpec) -> [LogitBounds?]? {
        switch self {
        case .raw: return nil
        case .logit: return Normalization.parameterBounds(spec)
        case .logitFunctions: return Normalization.parameterBounds(spec, functionsOnly: true)
        }
    }
}

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
    /// How a data series' value between two grid points is made in an example; nil: `.restored`.
    public var seriesNoise: SeriesNoise?
    /// How many tokens a function-valued parameter gets in an example; nil: `.logUniform`.
    public var functionTokens: FunctionTokens?
    /// Share of examples whose condition mask is a forecast (`ForecastMaskSampler`: data up to a cut
    /// observed, the rest latent) instead of one of the reference's mixture; nil: none (the method's
    /// mixture alone). Part of the run's identity only when set.
    public var forecastMasks: Double?
    /// How bounded parameters reach the network; nil: raw (z-scored only). Part of the run's
    /// identity only when set.
    public var boundedParameters: BoundedParameters?
    /// How the latent tokens of an example share its loss; nil: `.tokens` (every token alike, the
    /// method's). Part of the run's identity only when set.
    public var lossWeights: LossWeights?
    /// SHA-256 of the archive whose weights the run starts from (`Trainer.train(initial:)`), part of
    /// the run's identity; nil: fresh weights.
    public var initialWeightsSHA256: String?

    public init(steps: Int? = nil, seed: UInt64 = 0) { self.steps = steps; self.seed = seed }

    public func resolvedSteps(simulations: Int) -> Int {
        steps ?? min(max(3 * simulations, 5000), 100_000)
    }
}

/// How a training example's data series value at a random time between two points of the noisy dense
/// grid is made. `restored`: interpolated, with the observation noise the average of two noisy values
/// loses drawn afresh (`TimeAxis.observe`), so every time scatters by the series' declared noise, as
/// real observations do. `interpolated`: plain linear interpolation, whose noise variance falls to
/// (1 - w)^2 + w^2 of the declared one at weight w (2/3 on average): models trained so (before
/// 2026-12-06) learnt a noise sd about 0.82 of the declared one. Series without declared noise are
/// interpolated either way.
public enum SeriesNoise: String, Codable, CaseIterable, Sendable { case restored, interpolated }

/// How many tokens a function-valued parameter (e.g. SIRD's beta(t)) gets in a training example.
/// `logUniform`: as every series, log-uniform on 1...maxPoints, so only about 2.5% of examples have 90
/// or more of a 100-point function's tokens, while queries ask for it on its whole grid.
/// `halfDense`: half the examples draw it log-uniform, the other half uniform on
/// ceil(maxPoints / 2)...maxPoints, so dense queries of the function are as common in training as sparse ones.
public enum FunctionTokens: String, Codable, CaseIterable, Sendable {
    case logUniform = "log-uniform"
    case halfDense = "half-dense"
}

/// How the latent tokens of one training example share its denoising loss. `tokens`: every latent
/// token weighs 1 (the method's), so a scalar parameter among 200 series and function tokens gets
/// 1/200 of the example's loss. `sqrtVariables`: a latent token of a node (a scalar, one component of
/// a vector, or a whole time series or function of time) with n latent tokens in the example weighs
/// 1/sqrt(n), rescaled so the example's weights still add up to its latent token count: a 50-token
/// series keeps most of its share and a scalar gains (sird with 50 tokens per series and function:
/// a scalar weighs about 6.5, a series token about 0.9). Only models with time-indexed variables have
/// nodes of more than one token (`train` refuses it for others).
public enum LossWeights: String, Codable, CaseIterable, Sendable {
    case tokens
    case sqrtVariables = "sqrt-variables"
}

/// What happened during training: the figures stored with a model (its provenance's `training`).
public struct TrainingSummary: Codable, Hashable, Sendable {
    public var steps: Int
    public var stepsPlanned: Int
    public var batchSize: Int
    public var finalTrainLoss: Double
    public var bestValidationLoss: Double
    public var bestValidationStep: Int
    public var stoppedEarly: Bool
    public var seconds: Double
    public init(steps: Int, stepsPlanned: Int, batchSize: Int, finalTrainLoss: Double, bestValidationLoss: Double,
                bestValidationStep: Int, stoppedEarly: Bool, seconds: Double) {
        self.steps = steps; self.stepsPlanned = stepsPlanned; self.batchSize = batchSize
        self.finalTrainLoss = finalTrainLoss; self.bestValidationLoss = bestValidationLoss
        self.bestValidationStep = bestValidationStep; self.stoppedEarly = stoppedEarly; self.seconds = seconds
    }
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
                             config: TrainingConfig, initial: Arena? = nil, checkpoint: CheckpointPolicy? = nil,
                             progress: (TrainingProgress) -> Void) throws -> (ScoreModel, TrainingSummary) {
        try TrainingData.check(simulations, width: spec.denseWidth)
        let run = TrainingRun(spec: spec, simulations: simulations, settings: settings, config: config, initial: initial)
        if let checkpoint { try run.resumeIfSaved(checkpoint) }
        try run.train(checkpoint: checkpoint, progress: progress)
        return (run.model, run.summary)
    }
}

/// Turns a normalised dense simulation row into one training example: which tokens, at which times,
/// with which clean values. Fixed nodes always appear. Each time-indexed variable is dropped entirely
/// with probability 0.1 (missing data), otherwise it gets k tokens at sorted uniform random times on
/// its axis, with values interpolated linearly from the dense grid (a data series' declared noise
/// restored between grid points, unless `SeriesNoise.interpolated`). k is log-uniform on 1...maxPoints
/// (`tokenCount`): half the examples of a 100-point axis have at most 10 tokens per series, the way
/// files come, while one in seven has more than 50, so the model learns dense query grids too.
struct ExampleMaker: Sendable {
    let model: ScoreModel
    let spec: ModelSpec
    /// (node, dense column) of every fixed node
    let fixedNodes: [(Int, Int)]
    /// (node, axis, first dense column) of every time-indexed variable
    let timeNodes: [(Int, TimeAxis, Int)]
    let isDataNode: [Bool]
    let maxTokens: Int
    /// Mean tokens per example (what the batch's chunks are sized by).
    let expectedTokens: Double
    let fixedAllowed: [UInt8]
    /// Each data series' declared noise when it is restored between grid points (`SeriesNoise`).
    let restoredNoise: [Int: ObservationNoise]
    /// Nodes of function-valued parameters whose token counts are drawn half dense (`FunctionTokens`).
    let halfDenseNodes: Set<Int>
    /// Share of examples given a forecast's condition mask (`TrainingConfig.forecastMasks`); 0: none,
    /// and then no random number is drawn for it (earlier runs keep their bits).
    let forecastShare: Double
    static let dropProbability = 0.1
    /// The name of how examples are drawn, part of a checkpoint's identity: series token counts
    /// log-uniform on 1...maxPoints, chunks sized by the mean example, and how series noise is treated
    /// between grid points (the interpolated scheme keeps the name it had before the choice existed).
    static func scheme(_ noise: SeriesNoise, functions: FunctionTokens = .logUniform) -> String {
        let counts: String
        switch noise {
        case .interpolated: counts = "log-uniform-token-counts"
        case .restored: counts = "log-uniform-token-counts, series noise restored between grid points"
        }
        return functions == .halfDense ? counts + ", function-valued parameters half dense" : counts
    }

    /// Examples per chunk of a batch: about 512 token rows at the mean example size (examples are
    /// sorted by length before they are chunked, so a chunk's examples are alike).
    var chunkSize: Int { BatchParallel.defaultChunk(tokens: Int(expectedTokens.rounded(.up))) }

    /// Tokens of one series: floor((maxPoints + 1)^u) for u ~ U(0, 1), i.e. log-uniform on 1...maxPoints
    /// (P(k) proportional to log((k + 1) / k)).
    static func tokenCount(maxPoints: Int, _ rng: inout RandomStream) -> Int {
        let k = Int(exp(rng.uniform() * log(Double(maxPoints) + 1)))
        return min(max(k, 1), maxPoints)
    }

    /// Tokens of a function-valued parameter under `FunctionTokens.halfDense`: with probability 1/2
    /// `tokenCount`, else uniform on ceil(maxPoints / 2)...maxPoints.
    static func halfDenseTokenCount(maxPoints: Int, _ rng: inout RandomStream) -> Int {
        if rng.uniform() < 0.5 { return tokenCount(maxPoints: maxPoints, &rng) }
        let fewest = (maxPoints + 1) / 2
        return fewest + Int(rng.nextUInt64() % UInt64(maxPoints - fewest + 1))
    }

    /// E[halfDenseTokenCount] = (E[tokenCount] + (ceil(maxPoints / 2) + maxPoints) / 2) / 2.
    static func meanHalfDenseTokenCount(maxPoints: Int) -> Double {
        (meanTokenCount(maxPoints: maxPoints) + Double((maxPoints + 1) / 2 + maxPoints) / 2) / 2
    }

    /// E[tokenCount] = sum_k k log((k + 1) / k) / log(maxPoints + 1).
    static func meanTokenCount(maxPoints: Int) -> Double {
        guard maxPoints > 1 else { return 1 }
        var sum = 0.0
        for k in 1...maxPoints {
            let x = Double(k)
            sum += x * log((x + 1) / x)
        }
        return sum / log(Double(maxPoints) + 1)
    }

    init(model: ScoreModel, seriesNoise: SeriesNoise, functionTokens: FunctionTokens = .logUniform, forecastShare: Double = 0) {
        self.model = model
        self.forecastShare = forecastShare
        let spec = model.spec
        self.spec = spec
        halfDenseNodes = functionTokens == .halfDense
            ? Set((0..<spec.nodeCount).filter { spec.variables[spec.variableOfNode[$0]].isFunctionOfTime }) : []
        var noise: [Int: ObservationNoise] = [:]
        if seriesNoise == .restored {
            for node in 0..<spec.nodeCount {
                let v = spec.variables[spec.variableOfNode[node]]
                if v.kind == .data, v.time != nil, let n = v.noise, n.std > 0 { noise[node] = n }
            }
        }
        restoredNoise = noise
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
        var expected = Double(fixed.count)
        for (node, axis, _) in timed {
            let mean = halfDenseNodes.contains(node) ? ExampleMaker.meanHalfDenseTokenCount(maxPoints: axis.maxPoints)
                : ExampleMaker.meanTokenCount(maxPoints: axis.maxPoints)
            expected += (1 - ExampleMaker.dropProbability) * mean
        }
        expectedTokens = expected
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
            let k = halfDenseNodes.contains(node) ? ExampleMaker.halfDenseTokenCount(maxPoints: axis.maxPoints, &rng)
                : ExampleMaker.tokenCount(maxPoints: axis.maxPoints, &rng)
            let times = (0..<k).map { _ in rng.uniform(axis.lower, axis.upper) }.sorted()
            let grid = row[first..<(first + axis.grid)]
            for t in times {
                tokens.append(TokenRef(node: node, time: t))
                if let noise = restoredNoise[node] {
                    values.append(observe(grid, at: t, axis: axis, node: node, noise: noise, &rng))
                } else {
                    values.append(Float(axis.interpolate(grid, at: t)))
                }
            }
        }
        return (tokens, values)
    }

    /// An example's condition mask (1 observed, 0 latent per token): a forecast's with probability
    /// `forecastShare`, else the reference's mixture.
    func conditionMask(_ tokens: [TokenRef], into mask: UnsafeMutablePointer<Float>, _ rng: inout RandomStream) {
        let isData = tokens.map { isDataNode[$0.node] }
        guard forecastShare > 0, rng.uniform() < forecastShare else {
            ConditionMaskSampler().sample(isData: isData, into: mask, &rng)
            return
        }
        let position = tokens.map { token in
            token.time.flatMap { t in spec.variables[spec.variableOfNode[token.node]].time.map { ($0.upper > $0.lower) ? (t - $0.lower) / ($0.upper - $0.lower) : 0 } }
        }
        ForecastMaskSampler().sample(isData: isData, position: position, into: mask, &rng)
    }

    /// A data series' normalised value at time t with its noise restored (in the variable's own units,
    /// where the noise is declared; shape comment: grid has axis.grid normalised values).
    func observe(_ grid: ArraySlice<Float>, at t: Double, axis: TimeAxis, node: Int, noise: ObservationNoise,
                 _ rng: inout RandomStream) -> Float {
        let norm = model.normalization
        let raw = grid.lazy.map { norm.denormalize(Double($0), node: node) }   // only the two neighbours are read
        return Float(norm.normalize(axis.observe(raw, at: t, noise: noise, &rng), node: node))
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
    /// x_0 (examples, tokens): each token's clean value (read by the `.edm` loss)
    let cleanValues: FloatBuffer
    /// (examples, tokens): each latent token's share of its example's loss (`LossWeights`); nil: all 1
    let tokenWeights: FloatBuffer?

    init(model: ScoreModel, batch: TokenBatch, maker: ExampleMaker, lossWeights: LossWeights = .tokens) {
        self.model = model; self.batch = batch; self.maker = maker; capacity = batch.tokens
        eps = FloatBuffer(batch.capacity * batch.tokens)
        cleanValues = FloatBuffer(batch.capacity * batch.tokens)
        tokenWeights = lossWeights == .tokens ? nil : FloatBuffer(batch.capacity * batch.tokens)
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
        let sde = model.settings.sde, kind = model.settings.mask
        let t = rng.uniform(SDE.tMin, 1)
        batch.diffusionTime[e] = Float(t)
        let mu = Float(sde.mean(t)), sigma = Float(sde.std(t))
        let obs = batch.observed + e * capacity
        maker.conditionMask(tokens, into: obs, &rng)
        // the layout, once its mask is known (the directed mask depends on this condition mask);
        // fixed layouts were filled once, so only a directed mask is set for them
        if !maker.timeNodes.isEmpty || kind == .directed {
            let observed = kind == .directed ? (0..<tokens.count).map { obs[$0] != 0 } : nil
            let allowed = model.masks.mask(for: tokens, kind: kind, observed: observed)
            if maker.timeNodes.isEmpty { model.setMask(batch, example: e, tokens: tokens.count, allowed: allowed) }
            else { model.fill(batch, example: e, tokens: tokens, allowed: allowed) }
        }
        let cIn = Float(model.settings.resolvedParametrisation.inputScale(sigma: Double(sigma)))
        for i in 0..<tokens.count {
            let z = Float(rng.normal())
            eps.base[e * capacity + i] = z
            cleanValues.base[e * capacity + i] = clean[i]
            let noised = mu * clean[i] + sigma * z
            batch.values[e * capacity + i] = obs[i] != 0 ? clean[i] : cIn == 1 ? noised : cIn * noised
        }
        if let tokenWeights { Self.sqrtVariableWeights(tokens, observed: obs, into: tokenWeights.base + e * capacity) }
    }

    /// weights (tokens): 1/sqrt(n_v) for a latent token of node v with n_v latent tokens, scaled so the
    /// latent tokens' weights add up to their count; 0 for observed tokens.
    static func sqrtVariableWeights(_ tokens: [TokenRef], observed: UnsafePointer<Float>, into weights: UnsafeMutablePointer<Float>) {
        var latentPerNode: [Int: Int] = [:]
        for (i, t) in tokens.enumerated() where observed[i] == 0 { latentPerNode[t.node, default: 0] += 1 }
        let latent = latentPerNode.values.reduce(0, +)
        let total = latentPerNode.values.reduce(0.0) { $0 + Double($1).squareRoot() }
        let scale = total > 0 ? Double(latent) / total : 0
        for (i, t) in tokens.enumerated() {
            weights[i] = observed[i] != 0 ? 0 : Float(scale / Double(latentPerNode[t.node]!).squareRoot())
        }
    }

    /// Token (e, i)'s loss weight (1 unless `LossWeights.sqrtVariables`).
    @inline(__always) func weight(_ c: Int) -> Double { tokenWeights.map { Double($0.base[c]) } ?? 1 }

    /// For examples [start, start+count) with raw outputs out (count, tokens):
    /// sum_e lambda(t_e) sum_{latent i} w_i (s_i - target_i)^2 / normalizer, s = out / max(sigma, 1e-3),
    /// target = -eps / sigma. Padding tokens are ignored. Writes d loss / d out when dOutput is given.
    func loss(start: Int, count: Int, output out: UnsafePointer<Float>, dOutput: UnsafeMutablePointer<Float>?,
              normalizer: Int) -> Double {
        if model.settings.resolvedParametrisation == .edm {
            return edmLoss(start: start, count: count, output: out, dOutput: dOutput, normalizer: normalizer)
        }
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
                let diff = Double(out[r]) / scale + Double(eps.base[e * d + i]) / sigma, w = weight(e * d + i)
                sum += diff * diff * w
                dOutput?[r] = Float(lambda * 2 * diff / scale * inv * w)
            }
            total += lambda * sum * inv
        }
        return total
    }

    /// The `.edm` loss for examples [start, start+count): sum_e sum_{latent i} w_i (out_i - F_i)^2 / normalizer
    /// with F = (sigma x_0 - eps) / sqrt(sigma^2 + 1) (EDM's lambda(sigma) |D - x_0|^2 at sigma_data = 1).
    /// Padding and observed tokens are ignored. Writes d loss / d out when dOutput is given.
    func edmLoss(start: Int, count: Int, output out: UnsafePointer<Float>, dOutput: UnsafeMutablePointer<Float>?,
                 normalizer: Int) -> Double {
        let sde = model.settings.sde, d = capacity, inv = 1 / Double(normalizer)
        var total = 0.0
        for k in 0..<count {
            let e = start + k
            let sigma = sde.std(Double(batch.diffusionTime[e])), norm = 1 / (sigma * sigma + 1).squareRoot()
            let n = Int(batch.counts[e])
            var sum = 0.0
            for i in 0..<d {
                let r = k * d + i, c = e * d + i
                if i >= n || batch.observed[c] != 0 {
                    dOutput?[r] = 0
                    continue
                }
                let target = (sigma * Double(cleanValues.base[c]) - Double(eps.base[c])) * norm
                let diff = Double(out[r]) - target, w = weight(c)
                sum += diff * diff * w
                dOutput?[r] = Float(2 * diff * inv * w)
            }
            total += sum * inv
        }
        return total
    }
}
