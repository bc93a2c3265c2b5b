// A trained all-conditional score model: spec, network, SDE, normalisation and weights.
import SbiCore
import Foundation

/// Choices that define the network and the diffusion (stored in the model archive).
public struct NetworkSettings: Codable, Hashable, Sendable {
    public var preset: TransformerConfig.Preset
    public var sde: SDE
    public var mask: AttentionMaskKind
    /// How the network's input and output relate to x_t and the score; nil (every archive before
    /// it existed, and `.noise` given to `init`): `.noise`. Absent from the stored settings unless it
    /// is another, so older archives and checkpoints keep their bytes and identity.
    public private(set) var parametrisation: Parametrisation?
    public init(preset: TransformerConfig.Preset = .small, sde: SDE = .defaultVE, mask: AttentionMaskKind = .undirected,
                parametrisation: Parametrisation? = nil) {
        self.preset = preset; self.sde = sde; self.mask = mask
        self.parametrisation = parametrisation == .noise ? nil : parametrisation
    }

    public var resolvedParametrisation: Parametrisation { parametrisation ?? .noise }
}

/// How the raw network output F at noise level sigma becomes a score, and how latent inputs are
/// scaled (observed tokens are clean and always enter as they are).
public enum Parametrisation: String, Codable, Hashable, Sendable, CaseIterable {
    /// METHOD.md's: the input is x_t, the score is F / max(sigma, 1e-3) (F estimates -eps), and the
    /// loss weights (s - target)^2 by g(t)^2.
    case noise
    /// Karras et al. 2022 (EDM) preconditioning with sigma_data = 1 (values are z-scored), VE only:
    /// the input is c_in x_t with c_in = 1 / sqrt(sigma^2 + 1), the denoiser is D = c_skip x_t + c_out F
    /// with c_skip = 1 / (sigma^2 + 1) and c_out = sigma / sqrt(sigma^2 + 1), the score (D - x_t) / sigma^2;
    /// the loss is |F - F_target|^2 with F_target = (sigma x_0 - eps) / sqrt(sigma^2 + 1), the same as
    /// EDM's lambda(sigma) |D - x_0|^2, so F's target has unit scale at every noise level.
    case edm

    /// Factor on a latent token's x_t before it enters the network.
    @inline(__always) public func inputScale(sigma: Double) -> Double {
        switch self {
        case .noise: 1
        case .edm: 1 / (sigma * sigma + 1).squareRoot()
        }
    }

    /// The score of latent x_t from the network output F: score = a x_t + b F, as (a, b).
    @inline(__always) public func scoreCoefficients(sigma: Double) -> (ofInput: Double, ofOutput: Double) {
        switch self {
        case .noise: (0, 1 / max(sigma, SDE.outputScaleMin))
        case .edm: (-1 / (sigma * sigma + 1), 1 / (sigma * (sigma * sigma + 1).squareRoot()))
        }
    }
}

/// A bounded variable's logit transform: the network models u = log((x - lower) / (upper - x)),
/// so its samples stay inside (lower, upper) and mass piled against a bound becomes a smooth tail.
public struct LogitBounds: Codable, Hashable, Sendable {
    public var lower: Double
    public var upper: Double
    public init(lower: Double, upper: Double) { self.lower = lower; self.upper = upper }

    /// Values at or beyond a bound are moved this share of the width inside it (an observed 0 stays finite).
    static let edge = 1e-6

    /// u = logit((x - lower) / width), x clamped into the open interval.
    @inline(__always) public func forward(_ x: Double) -> Double {
        let w = upper - lower
        let p = min(max((x - lower) / w, Self.edge), 1 - Self.edge)
        return log(p / (1 - p))
    }
    /// x = lower + width sigmoid(u).
    @inline(__always) public func inverse(_ u: Double) -> Double { lower + (upper - lower) * sigmoid(u) }
    /// dx/du at u.
    @inline(__always) public func slope(_ u: Double) -> Double { let s = sigmoid(u); return (upper - lower) * s * (1 - s) }
    @inline(__always) func sigmoid(_ u: Double) -> Double { 1 / (1 + exp(-u)) }
}

/// Per-node z-scoring, after an optional logit transform of bounded nodes: the network sees
/// (T(value) - mean) / std, with mean and std those of T(value) in the training rows.
public struct Normalization: Codable, Hashable, Sendable {
    public var mean: [Double]
    public var std: [Double]
    /// Per node, the bounds of its logit transform (nil: none); nil altogether for models trained
    /// without (every archive before 2026-12-07).
    public var logit: [LogitBounds?]?

    public init(mean: [Double], std: [Double], logit: [LogitBounds?]? = nil) {
        self.mean = mean; self.std = std; self.logit = logit
    }

    /// Mean and std per node of dense simulation rows (std clipped below at 1e-2, as in the reference);
    /// a time-indexed node pools every grid value of its variable. With `logit`, a node that has
    /// bounds is fitted on its transformed values.
    public init(fitting rows: [[Double]], spec: ModelSpec, logit: [LogitBounds?]? = nil) {
        let n = Double(max(rows.count, 1))
        var m: [Double] = [], s: [Double] = []
        let offsets = spec.denseOffsets
        var node = 0
        for (v, variable) in spec.variables.enumerated() {
            let columns: [[Int]] = variable.time != nil ? [Array(offsets[v]..<(offsets[v] + variable.denseWidth))]
                                                       : (0..<variable.size).map { [offsets[v] + $0] }
            for cols in columns {
                let bounds = logit?[node] ?? nil
                let value: (Double) -> Double = { x in bounds.map { $0.forward(x) } ?? x }
                let count = n * Double(cols.count)
                var mean = 0.0, varSum = 0.0
                for r in rows { for c in cols { mean += value(r[c]) } }
                mean /= count
                for r in rows { for c in cols { let d = value(r[c]) - mean; varSum += d * d } }
                m.append(mean); s.append(max((varSum / count).squareRoot(), 1e-2))
                node += 1
            }
        }
        mean = m; std = s; self.logit = logit
    }

    /// Logit bounds for every node of a bounded parameter (its prior's support), none for data; with
    /// `functionsOnly`, for the nodes of function-valued parameters (e.g. sird's beta(t)) alone.
    public static func parameterBounds(_ spec: ModelSpec, functionsOnly: Bool = false) -> [LogitBounds?] {
        spec.variableOfNode.map { v in
            guard spec.variables[v].kind == .parameter, let s = spec.variables[v].support,
                  s.lower.isFinite, s.upper.isFinite, s.lower < s.upper,
                  !functionsOnly || spec.variables[v].isFunctionOfTime else { return nil }
            return LogitBounds(lower: s.lower, upper: s.upper)
        }
    }

    /// The logit bounds of a node, if it has a transform.
    @inline(__always) public func bounds(_ node: Int) -> LogitBounds? { logit?[node] ?? nil }

    @inline(__always) public func normalize(_ x: Double, node: Int) -> Double {
        let u = logit?[node].map { $0.forward(x) } ?? x
        return (u - mean[node]) / std[node]
    }
    @inline(__always) public func denormalize(_ z: Double, node: Int) -> Double {
        let u = z * std[node] + mean[node]
        return logit?[node].map { $0.inverse(u) } ?? u
    }
    /// dx/dz, the physical change per normalised unit at z (std without a transform).
    @inline(__always) public func slope(_ z: Double, node: Int) -> Double {
        guard let b = logit?[node] else { return std[node] }
        return std[node] * b.slope(z * std[node] + mean[node])
    }
}

public final class ScoreModel: @unchecked Sendable {
    public let spec: ModelSpec
    public let settings: NetworkSettings
    public let transformer: Transformer
    public let params: Arena
    public let normalization: Normalization
    /// Attention masks for any token layout of this model.
    public let masks: AttentionMasks

    public static func transformerConfig(spec: ModelSpec, settings: NetworkSettings) -> TransformerConfig {
        TransformerConfig.preset(settings.preset, identifiers: spec.nodeCount, timeIndexed: spec.hasTimeIndexed)
    }

    /// `config` defaults to the preset's; archives pass the stored one.
    public init(spec: ModelSpec, settings: NetworkSettings, config: TransformerConfig? = nil, params: Arena,
                normalization: Normalization) {
        self.spec = spec; self.settings = settings; self.params = params; self.normalization = normalization
        transformer = Transformer(config: config ?? ScoreModel.transformerConfig(spec: spec, settings: settings))
        precondition(params.layout == transformer.layout, "weights do not match the network layout")
        masks = AttentionMasks(spec: spec)
    }

    /// Writes the layout of example e: identifiers, token times (mapped to [0, 1] on the variable's
    /// time axis), the token count and the attention mask `allowed` (tokens.count^2, from `masks`);
    /// padding tokens past the count get identifier 0 and no time.
    public func fill(_ batch: TokenBatch, example e: Int, tokens: [TokenRef], allowed: [UInt8]) {
        let cap = batch.tokens, t = tokens.count
        precondition(t <= cap, "\(t) tokens do not fit a batch of \(cap)")
        batch.usesMask = settings.mask != .dense
        batch.counts[e] = Int32(t)
        let varOf = spec.variableOfNode
        for i in 0..<cap {
            let r = e * cap + i
            if i < t, let time = tokens[i].time, let axis = spec.variables[varOf[tokens[i].node]].time {
                batch.times[r] = Float(axis.normalized(time)); batch.hasTime[r] = 1
            } else {
                batch.times[r] = 0; batch.hasTime[r] = 0
            }
            batch.ids[r] = i < t ? Int32(tokens[i].node) : 0
            if i >= t { batch.values[r] = 0; batch.observed[r] = 0 }
        }
        if batch.usesMask { setMask(batch, example: e, tokens: t, allowed: allowed) }
    }

    /// Writes example e's attention mask `allowed` (tokens^2) into the batch (0 past the tokens).
    public func setMask(_ batch: TokenBatch, example e: Int, tokens t: Int, allowed: [UInt8]) {
        let cap = batch.tokens
        let m = batch.allowedStorage + e * cap * cap
        m.update(repeating: 0, count: cap * cap)
        allowed.withUnsafeBufferPointer { a in
            for i in 0..<t { (m + i * cap).update(from: a.baseAddress! + i * t, count: t) }
        }
    }

    /// The score from a raw network output under `.noise`: out / max(sigma(t), 1e-3).
    @inline(__always)
    public func outputScale(_ t: Double) -> Double { max(settings.sde.std(t), SDE.outputScaleMin) }
}
