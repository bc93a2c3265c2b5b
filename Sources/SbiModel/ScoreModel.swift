// A trained all-conditional score model: spec, network, SDE, normalisation and weights.
import SbiCore

/// Choices that define the network and the diffusion (stored in the model archive).
public struct NetworkSettings: Codable, Hashable, Sendable {
    public var preset: TransformerConfig.Preset
    public var sde: SDE
    public var mask: AttentionMaskKind
    public init(preset: TransformerConfig.Preset = .small, sde: SDE = .defaultVE, mask: AttentionMaskKind = .undirected) {
        self.preset = preset; self.sde = sde; self.mask = mask
    }
}

/// Per-node z-scoring: the network sees (value - mean) / std.
public struct Normalization: Codable, Hashable, Sendable {
    public var mean: [Double]
    public var std: [Double]

    public init(mean: [Double], std: [Double]) { self.mean = mean; self.std = std }

    /// Mean and std per node of dense simulation rows (std clipped below at 1e-2, as in the reference);
    /// a time-indexed node pools every grid value of its variable.
    public init(fitting rows: [[Double]], spec: ModelSpec) {
        let n = Double(max(rows.count, 1))
        var m: [Double] = [], s: [Double] = []
        let offsets = spec.denseOffsets
        for (v, variable) in spec.variables.enumerated() {
            let columns: [[Int]] = variable.time != nil ? [Array(offsets[v]..<(offsets[v] + variable.denseWidth))]
                                                       : (0..<variable.size).map { [offsets[v] + $0] }
            for cols in columns {
                let count = n * Double(cols.count)
                var mean = 0.0, varSum = 0.0
                for r in rows { for c in cols { mean += r[c] } }
                mean /= count
                for r in rows { for c in cols { varSum += (r[c] - mean) * (r[c] - mean) } }
                m.append(mean); s.append(max((varSum / count).squareRoot(), 1e-2))
            }
        }
        mean = m; std = s
    }

    @inline(__always) public func normalize(_ x: Double, node: Int) -> Double { (x - mean[node]) / std[node] }
    @inline(__always) public func denormalize(_ z: Double, node: Int) -> Double { z * std[node] + mean[node] }
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

    /// The score from a raw network output: out / max(sigma(t), 1e-3).
    @inline(__always)
    public func outputScale(_ t: Double) -> Double { max(settings.sde.std(t), SDE.outputScaleMin) }
}
