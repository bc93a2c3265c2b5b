// Reverse-time sampling of any conditional from the all-conditional score model.
import Dispatch
import SbiCore

/// How to integrate from t = 1 down to t = 1e-5.
public struct SamplerSettings: Codable, Hashable, Sendable {
    public enum Method: String, Codable, CaseIterable, Sendable {
        /// reverse SDE, Euler-Maruyama on a uniform grid in t (no noise in the last step)
        case sde
        /// probability-flow ODE, Heun's method on a uniform grid in t
        case ode
        /// EDM (Karras et al. 2022): Heun's method on the probability-flow ODE over noise levels
        /// spaced with rho, optionally with stochastic churn, and a final Euler step to sigma = 0
        case edm
        /// DPM-Solver++(2M) (Lu et al. 2022) on the probability-flow ODE over the same noise levels
        case dpmpp2m
        /// DPM-Solver++(2M) on the reverse SDE over the same noise levels: each step injects the noise
        /// the SDE would, so errors of the score are forgotten instead of carried (Lu et al. 2022, sec. 5)
        case dpmpp2mSDE = "dpmpp2m-sde"
    }
    public var method: Method
    /// sde, ode: points of the uniform t grid (steps - 1 intervals). edm, dpmpp2m(-sde): noise levels
    /// above zero (steps intervals, the last one to sigma = 0).
    public var steps: Int
    /// RePaint-style resampling steps per step (used with guidance).
    public var resampling: Int
    /// edm, dpmpp2m(-sde): the spacing of the noise levels (sigma_i^(1/rho) evenly spaced).
    public var rho: Double
    /// edm, dpmpp2m(-sde): the lowest noise level above zero, in normalised units (clamped to the model's domain).
    public var sigmaLow: Double
    /// edm: S_churn, the noise added back per step, as a total over the run (0: deterministic).
    public var churn: Double
    /// dpmpp2m(-sde): where the rho-spaced levels start, in normalised units, after one step from
    /// the SDE's largest level (VE: 15), so the other steps - 1 go where posteriors take shape;
    /// nil: they start at the largest level.
    public var sigmaHigh: Double?

    public init(method: Method = .sde, steps: Int = 50, resampling: Int = 0, rho: Double = 7, sigmaLow: Double = 0.002,
                churn: Double = 0, sigmaHigh: Double? = nil) {
        self.method = method; self.steps = steps; self.resampling = resampling
        self.rho = rho; self.sigmaLow = sigmaLow; self.churn = churn; self.sigmaHigh = sigmaHigh
    }

    /// Network evaluations per sample (without guidance's resampling).
    public var networkEvaluations: Int {
        switch method {
        case .sde: return steps - 1
        case .ode: return 2 * (steps - 1)
        case .edm: return 2 * steps - 1
        case .dpmpp2m, .dpmpp2mSDE: return steps
        }
    }

    /// Whether the method reads `sigmaHigh` (the DPM-Solver++ samplers: EDM's Heun step is not
    /// accurate across the long first step it makes).
    public var readsSigmaHigh: Bool { method == .dpmpp2m || method == .dpmpp2mSDE }

    /// Whether the method integrates over noise levels (and so reads rho, sigmaLow and churn).
    public var usesNoiseLevels: Bool { method == .edm || method == .dpmpp2m || method == .dpmpp2mSDE }

    /// The fewest steps the method integrates with: one noise level, or two points of the t grid.
    public var minimumSteps: Int { usesNoiseLevels ? 1 : 2 }

    enum CodingKeys: String, CodingKey { case method, steps, resampling, rho, sigmaLow = "sigma_low", churn, sigmaHigh = "sigma_high" }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(method: try c.decode(Method.self, forKey: .method), steps: try c.decode(Int.self, forKey: .steps),
                  resampling: try c.decode(Int.self, forKey: .resampling),
                  rho: try c.decodeIfPresent(Double.self, forKey: .rho) ?? 7,
                  sigmaLow: try c.decodeIfPresent(Double.self, forKey: .sigmaLow) ?? 0.002,
                  churn: try c.decodeIfPresent(Double.self, forKey: .churn) ?? 0,
                  sigmaHigh: try c.decodeIfPresent(Double.self, forKey: .sigmaHigh))
    }

    /// The noise-level fields are written only for the methods that read them, so archives and
    /// reports of the t-grid samplers keep their bytes.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(method, forKey: .method); try c.encode(steps, forKey: .steps); try c.encode(resampling, forKey: .resampling)
        guard usesNoiseLevels else { return }
        try c.encode(rho, forKey: .rho); try c.encode(sigmaLow, forKey: .sigmaLow); try c.encode(churn, forKey: .churn)
        try c.encodeIfPresent(sigmaHigh, forKey: .sigmaHigh)
    }

    /// These settings with the given steps, method and lowest and highest noise levels where they are
    /// not nil. A stored `sigmaHigh` is dropped when the method changes to one that does not read it.
    public func overriding(steps: Int? = nil, method: Method? = nil, sigmaLow: Double? = nil, sigmaHigh: Double? = nil) -> SamplerSettings {
        var s = self
        if let steps { s.steps = steps }
        if let method {
            s.method = method
            if !s.readsSigmaHigh { s.sigmaHigh = nil }
        }
        if let sigmaLow { s.sigmaLow = sigmaLow }
        if let sigmaHigh { s.sigmaHigh = sigmaHigh }
        return s
    }

    /// What `sbiwatch train` stores with a new model: for VE, DPM-Solver++(2M) SDE with 24 steps (24
    /// network evaluations). Measured (bench accuracy, 10,000 simulations, 5 observations, MLP C2ST)
    /// against the former default, the SDE with 100 steps (99 evaluations): two_moons 0.535 against
    /// 0.531, gaussian_mixture 0.519 against 0.531 (its narrow mode: the SDE at 25 steps gives 0.607);
    /// the shipped sird model is calibrated under it at 20 steps where 40 SDE steps were not. For VP,
    /// the SDE with 250 steps (METHOD.md: VP needs 250-500).
    public static func trainingDefault(for sde: SDE) -> SamplerSettings {
        if case .vp = sde { return sdeDefault(for: sde) }
        return SamplerSettings(method: .dpmpp2mSDE, steps: 24)
    }

    /// The Euler-Maruyama sampler with the steps it needs: 100 for VE, 250 for VP (`train --sampler sde`).
    public static func sdeDefault(for sde: SDE) -> SamplerSettings {
        if case .vp = sde { return SamplerSettings(method: .sde, steps: 250) }
        return SamplerSettings(method: .sde, steps: 100)
    }
}

/// What is known: exact values of observed tokens and constraints on latent ones (physical units),
/// by token index in the sampled layout (for models without time-indexed variables: node index).
public struct Conditioning: Sendable {
    public var observed: [Int: Double]
    public var constraints: [any GuidanceConstraint]
    /// Tokens observed at a value of their own in each sample: sample j holds token i at
    /// perSample[i][j] (e.g. parameter draws, to sample data given each one).
    public var perSample: [Int: [Double]]
    public init(observed: [Int: Double] = [:], constraints: [any GuidanceConstraint] = [], perSample: [Int: [Double]] = [:]) {
        self.observed = observed; self.constraints = constraints; self.perSample = perSample
    }
}

/// Scores of the noised distribution in normalised units, for a block of `n` samples of `d` tokens.
public protocol ScoreFunction {
    var tokenCount: Int { get }
    var sde: SDE { get }
    /// Per-token normalisation (token i converts as its node does): what the sampler converts with.
    var tokenNormalization: Normalization { get }
    /// Largest block `scores` accepts.
    var blockCapacity: Int { get }
    /// score (n, d) of x (n, d) at time t; `observed` (d) flags tokens held at their values.
    func scores(_ x: [Double], n: Int, t: Double, observed: [Float], into score: inout [Double])
}

/// The network as a score function on one token layout (out / max(sigma(t), 1e-3) under the
/// `.noise` parametrisation; `Parametrisation` gives the others).
public final class NetworkScore: ScoreFunction {
    public let model: ScoreModel
    public let tokens: [TokenRef]
    let batch: TokenBatch
    let runner: BatchParallel
    public let tokenNormalization: Normalization
    public var tokenCount: Int { tokens.count }
    public var sde: SDE { model.settings.sde }
    public var blockCapacity: Int { batch.capacity }

    public init(model: ScoreModel, tokens: [TokenRef], capacity: Int, threads: Int? = nil) {
        self.model = model; self.tokens = tokens
        batch = TokenBatch(capacity: capacity, tokens: max(tokens.count, 1))
        let allowed = model.masks.mask(for: tokens, kind: model.settings.mask)
        for e in 0..<capacity { model.fill(batch, example: e, tokens: tokens, allowed: allowed) }
        runner = BatchParallel(model: model.transformer, capacity: capacity, tokens: batch.tokens,
                               training: false, threads: threads)
        let norm = model.normalization
        tokenNormalization = Normalization(mean: tokens.map { norm.mean[$0.node] }, std: tokens.map { norm.std[$0.node] },
                                           logit: norm.logit.map { l in tokens.map { l[$0.node] } })
    }

    /// The condition mask the directed attention mask was last computed for.
    var maskedFor: [Float]?

    public func scores(_ x: [Double], n: Int, t: Double, observed: [Float], into score: inout [Double]) {
        let d = tokenCount
        if model.settings.mask == .directed && maskedFor != observed {
            let allowed = model.masks.mask(for: tokens, kind: .directed, observed: observed.map { $0 != 0 })
            for e in 0..<batch.capacity { model.setMask(batch, example: e, tokens: d, allowed: allowed) }
            maskedFor = observed
        }
        batch.batch = n
        for e in 0..<n { (batch.observed + e * d).update(from: observed, count: d) }
        let parametrisation = model.settings.resolvedParametrisation, sigma = sde.std(t)
        let cIn = parametrisation.inputScale(sigma: sigma)
        for e in 0..<n {
            for i in 0..<d { batch.values[e * d + i] = Float(observed[i] != 0 || cIn == 1 ? x[e * d + i] : cIn * x[e * d + i]) }
        }
        for e in 0..<n { batch.diffusionTime[e] = Float(t) }
        runner.forward(model.params, batch.view)
        if parametrisation == .noise {  // a division, as archives before the parametrisations sampled
            let scale = model.outputScale(t)
            for r in 0..<(n * d) { score[r] = Double(runner.output.base[r]) / scale }
        } else {
            let (a, b) = parametrisation.scoreCoefficients(sigma: sigma)
            for r in 0..<(n * d) { score[r] = a * x[r] + b * Double(runner.output.base[r]) }
        }
    }
}

public enum Sampler {
    /// `count` joint samples of every node of a model without time-indexed variables
    /// (physical units; observed nodes hold their values).
    public static func sample(_ model: ScoreModel, _ conditioning: Conditioning, count: Int,
                              settings: SamplerSettings, key: RandomKey, threads: Int? = nil,
                              progress: ((Int, Int) -> Void)? = nil) throws -> [[Double]] {
        try sample(model, tokens: model.spec.fixedLayout, conditioning, count: count, settings: settings, key: key,
                   threads: threads, progress: progress)
    }

    /// `count` joint samples of the tokens of a layout (physical units; observed tokens hold their values).
    public static func sample(_ model: ScoreModel, tokens: [TokenRef], _ conditioning: Conditioning, count: Int,
                              settings: SamplerSettings, key: RandomKey, threads: Int? = nil,
                              progress: ((Int, Int) -> Void)? = nil) throws -> [[Double]] {
        guard tokens.count <= 4096 else {
            throw SbiError(.usage, "\(tokens.count) tokens in one query; the limit is 4096", hint: "query fewer points")
        }
        // a block's activations stay around 100 MB: capacity x tokens <= 2^18 token rows
        let capacity = max(1, min(count, 4096, (1 << 18) / max(tokens.count, 1)))
        let score = NetworkScore(model: model, tokens: tokens, capacity: capacity, threads: threads)
        return try sample(score, conditioning, count: count, settings: settings, key: key, progress: progress)
    }

    /// `count` joint samples from any score function. Sample j uses its own stream key.split(j),
    /// so sample j does not depend on `count` or on the thread count.
    public static func sample(_ scoreFunction: ScoreFunction, _ conditioning: Conditioning, count: Int,
                              settings: SamplerSettings, key: RandomKey,
                              progress: ((Int, Int) -> Void)? = nil) throws -> [[Double]] {
        let d = scoreFunction.tokenCount
        let labels = { (token: Int) in "token \(token)" }
        for (node, v) in conditioning.observed {
            guard node >= 0 && node < d else { throw SbiError(.usage, "token \(node) does not exist in this query") }
            guard v.isFinite else { throw SbiError(.badInput, "observed value of \(labels(node)) is not finite") }
        }
        for (node, values) in conditioning.perSample {
            guard node >= 0 && node < d, conditioning.observed[node] == nil else {
                throw SbiError(.usage, "\(labels(node)) is not a free token of this query")
            }
            guard values.count >= count else { throw SbiError(.usage, "\(labels(node)) has \(values.count) values for \(count) samples") }
            guard values.allSatisfy(\.isFinite) else { throw SbiError(.badInput, "a value of \(labels(node)) is not finite") }
        }
        for c in conditioning.constraints {
            for n in c.nodes where conditioning.observed[n] != nil || conditioning.perSample[n] != nil {
                throw SbiError(.usage, "\(labels(n)) is both observed and constrained",
                               hint: "give either an exact value or an interval for it, not both")
            }
        }
        guard count > 0 else { return [] }
        try validate(settings)
        let norm = scoreFunction.tokenNormalization
        var out: [[Double]] = []
        out.reserveCapacity(count)
        var first = 0
        while first < count {
            let n = min(scoreFunction.blockCapacity, count - first)
            var block = SampleBlock(scoreFunction, conditioning, norm: norm, settings: settings, n: n, key: key, first: first)
            block.integrate { k, of in progress?(first + k * n / of, count) }
            out.append(contentsOf: block.physicalSamples())
            first += n
        }
        return out
    }

    static func validate(_ settings: SamplerSettings) throws {
        guard settings.steps >= settings.minimumSteps else {
            throw SbiError(.usage, "the \(settings.method.rawValue) sampler needs at least \(settings.minimumSteps) steps")
        }
        guard settings.resampling >= 0 else { throw SbiError(.usage, "resampling must be 0 or more") }
        guard !settings.usesNoiseLevels || (settings.rho > 0 && settings.rho.isFinite && settings.sigmaLow > 0
                                            && settings.sigmaLow.isFinite && settings.churn >= 0 && settings.churn.isFinite
                                            && (settings.sigmaHigh.map { $0 > settings.sigmaLow && $0.isFinite } ?? true)) else {
            throw SbiError(.usage, "the noise-level sampler needs rho > 0, sigma_low > 0, churn >= 0 and sigma_high > sigma_low (finite)")
        }
        guard settings.sigmaHigh == nil || settings.readsSigmaHigh else {
            throw SbiError(.usage, "sigma_high is for the DPM-Solver++ samplers (dpmpp2m, dpmpp2m-sde): EDM's Heun step is not accurate across the long first step",
                           hint: "leave out --sigma-high with --sampler edm")
        }
    }

    /// score += grad log c at the Tweedie estimate x0_hat = (x_t + sigma^2 s) / mu, converted
    /// between physical and normalised units by the local slope dx/dz (std without a transform:
    /// grad_z = std * grad_x).
    static func addGuidance(_ sde: SDE, _ norm: Normalization, _ d: Int, _ conditioning: Conditioning, _ x: [Double],
                            _ t: Double, _ n: Int, _ score: inout [Double]) {
        let mu = sde.mean(t), sigma = sde.std(t)
        var x0 = [Double](repeating: 0, count: d), grad = [Double](repeating: 0, count: d)
        var slope = norm.std, sharpness = [Double](repeating: 0, count: d), noiseVariance = sharpness
        let fixedSlope = norm.logit == nil
        func setScale() {
            for i in 0..<d { sharpness[i] = 1 / (sigma * sigma * slope[i]); noiseVariance[i] = sigma * sigma * slope[i] * slope[i] }
        }
        if fixedSlope { setScale() }
        for e in 0..<n {
            for i in 0..<d {
                let z0 = (x[e * d + i] + sigma * sigma * score[e * d + i]) / mu
                x0[i] = norm.denormalize(z0, node: i)
                if !fixedSlope { slope[i] = norm.slope(z0, node: i) }
                grad[i] = 0
            }
            if !fixedSlope { setScale() }
            sharpness.withUnsafeBufferPointer { k in noiseVariance.withUnsafeBufferPointer { v in
                let scale = GuidanceScale(sharpness: k.baseAddress!, noiseVariance: v.baseAddress!)
                x0.withUnsafeBufferPointer { xp in
                    grad.withUnsafeMutableBufferPointer { gp in
                        for c in conditioning.constraints { c.addLogGradient(x: xp.baseAddress!, scale: scale, grad: gp.baseAddress!) }
                    }
                }
            } }
            for i in 0..<d where grad[i] != 0 { score[e * d + i] += grad[i] * slope[i] }
        }
    }
}
