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

    /// Mean and std of every column of `rows` (std clipped below at 1e-2, as in the reference).
    public init(fitting rows: [[Double]]) {
        let d = rows.first?.count ?? 0, n = Double(max(rows.count, 1))
        var m = [Double](repeating: 0, count: d), v = [Double](repeating: 0, count: d)
        for r in rows { for j in 0..<d { m[j] += r[j] } }
        for j in 0..<d { m[j] /= n }
        for r in rows { for j in 0..<d { v[j] += (r[j] - m[j]) * (r[j] - m[j]) } }
        mean = m
        std = v.map { max(($0 / n).squareRoot(), 1e-2) }
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
    /// allowed (T,T) for the model's attention mask kind.
    public let attentionMask: [UInt8]

    public var tokenCount: Int { spec.nodeCount }

    public static func transformerConfig(spec: ModelSpec, settings: NetworkSettings) -> TransformerConfig {
        TransformerConfig.preset(settings.preset, identifiers: spec.nodeCount, timeIndexed: false)
    }

    /// `config` defaults to the preset's; archives pass the stored one.
    public init(spec: ModelSpec, settings: NetworkSettings, config: TransformerConfig? = nil, params: Arena,
                normalization: Normalization) {
        self.spec = spec; self.settings = settings; self.params = params; self.normalization = normalization
        transformer = Transformer(config: config ?? ScoreModel.transformerConfig(spec: spec, settings: settings))
        precondition(params.layout == transformer.layout, "weights do not match the network layout")
        attentionMask = spec.attentionMask(settings.mask)
    }

    /// Fills the static part of a batch: identifiers, counts, attention mask, no times.
    public func prepare(_ batch: TokenBatch) {
        let t = tokenCount
        precondition(batch.tokens == t)
        batch.usesMask = settings.mask != .dense
        for e in 0..<batch.capacity {
            batch.counts[e] = Int32(t)
            for i in 0..<t {
                batch.ids[e * t + i] = Int32(i)
                batch.hasTime[e * t + i] = 0
                batch.times[e * t + i] = 0
            }
            if batch.usesMask {
                (batch.allowedStorage + e * t * t).update(from: attentionMask, count: t * t)
            }
        }
    }

    /// The score from a raw network output: out / max(sigma(t), 1e-3).
    @inline(__always)
    public func outputScale(_ t: Double) -> Double { max(settings.sde.std(t), SDE.outputScaleMin) }
}
