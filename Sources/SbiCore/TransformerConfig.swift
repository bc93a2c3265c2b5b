// Configuration of the score network (METHOD.md, "Tokens" and "Network").

/// Sizes of the token embedding and the pre-LayerNorm transformer encoder.
public struct TransformerConfig: Codable, Hashable, Sendable {
    public var layers: Int
    public var heads: Int
    public var keySize: Int
    /// MLP hidden width = widening * width.
    public var widening: Int
    /// Identifier embedding width (frozen, orthogonal random rows).
    public var idDim: Int
    /// The scalar value repeated this many times (no learned projection).
    public var valueDim: Int
    /// Time features of time-indexed tokens (0 when no variable carries a time).
    public var timeDim: Int
    /// Learned condition-state vector, multiplied by the 0/1 observed flag.
    public var condDim: Int
    /// Number of distinct identifiers (variables) the embedding table holds.
    public var identifiers: Int
    /// Gaussian Fourier frequencies for token times (features = 2x this).
    public var timeFrequencies: Int
    public var timeFrequencyStd: Float
    /// Gaussian Fourier frequencies for the diffusion time (features = 2x this).
    public var contextFrequencies: Int
    public var contextFrequencyStd: Float
    /// Std of the initial condition-state vector (reference: 0.1 small, 0.01 large).
    public var conditionInitStd: Float = 0.1

    public var width: Int { idDim + valueDim + timeDim + condDim }
    public var hiddenWidth: Int { widening * width }
    public var attentionWidth: Int { heads * keySize }

    public init(layers: Int, heads: Int, keySize: Int, widening: Int, idDim: Int, valueDim: Int,
                timeDim: Int, condDim: Int, identifiers: Int, timeFrequencies: Int = 128,
                timeFrequencyStd: Float = 1, contextFrequencies: Int = 64, contextFrequencyStd: Float = 1) {
        self.layers = layers; self.heads = heads; self.keySize = keySize; self.widening = widening
        self.idDim = idDim; self.valueDim = valueDim; self.timeDim = timeDim; self.condDim = condDim
        self.identifiers = identifiers; self.timeFrequencies = timeFrequencies
        self.timeFrequencyStd = timeFrequencyStd; self.contextFrequencies = contextFrequencies
        self.contextFrequencyStd = contextFrequencyStd
    }

    /// Named presets of METHOD.md.
    public enum Preset: String, Codable, CaseIterable, Sendable { case small, large }

    /// small: 6 layers, widening 3; large: 8 layers, widening 4. Both 4 heads of key size 10, width 50.
    /// With time-indexed tokens the width splits id 13 | value 13 | time 14 | condition 10,
    /// otherwise id 20 | value 20 | condition 10.
    public static func preset(_ p: Preset, identifiers: Int, timeIndexed: Bool) -> TransformerConfig {
        let (layers, widening) = p == .small ? (6, 3) : (8, 4)
        var c = TransformerConfig(layers: layers, heads: 4, keySize: 10, widening: widening,
                                  idDim: timeIndexed ? 13 : 20, valueDim: timeIndexed ? 13 : 20,
                                  timeDim: timeIndexed ? 14 : 0, condDim: 10, identifiers: identifiers)
        c.conditionInitStd = p == .small ? 0.1 : 0.01
        return c
    }

    /// Multiply-adds x2 of one forward pass per token with `tokens` keys in attention (dense).
    public func forwardFlopsPerToken(tokens: Int) -> Double {
        let c = Double(width), a = Double(attentionWidth), hdn = Double(hiddenWidth)
        let perLayer = 2 * c * 3 * a + 2 * a * c + 2 * 2 * c * hdn + 2 * 2 * Double(tokens) * a
        let embed = timeDim > 0 ? 2 * Double(2 * timeFrequencies) * Double(timeDim) : 0
        return Double(layers) * perLayer + embed + 2 * c
    }
}
