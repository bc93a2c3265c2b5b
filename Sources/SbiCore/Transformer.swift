// The score network: token assembly -> L pre-LayerNorm blocks with a diffusion-time
// context -> final LayerNorm -> per-token linear head (one raw output per token).
//
// Block l, on the residual stream h (R,C) with R = B*T rows:
//   a = LN1(h); qkv = a Wqkv + b; o = Attn(qkv); mid = h + o Wo + b
//   u = LN2(mid) Wup + b; g = GELU(u); ctx = GELU(fourier(t_diff) Wctx + b)  (B,C)
//   h' = mid + g Wdown + b + ctx[example]

/// Named views of one block's parameters.
struct BlockSlots: Sendable {
    let ln1w, ln1b, qkvW, qkvB, projW, projB, ln2w, ln2b, upW, upB, downW, downB, ctxW, ctxB: TensorSlot
}

/// Parameter slots of the whole network.
public struct TransformerSlots: Sendable {
    public let idTable: TensorSlot         // (identifiers, idDim), frozen
    public let timeFreqs: TensorSlot       // (timeFrequencies), frozen
    public let timeW: TensorSlot           // (2*timeFrequencies, timeDim)
    public let timeB: TensorSlot           // (timeDim)
    public let condition: TensorSlot       // (condDim)
    public let contextFreqs: TensorSlot    // (contextFrequencies), frozen
    let blocks: [BlockSlots]
    public let lnfW: TensorSlot, lnfB: TensorSlot
    public let headW: TensorSlot           // (C, 1)
    public let headB: TensorSlot           // (1)
}

/// The network definition: its config, parameter layout and slots. Stateless; weights live in an `Arena`.
public struct Transformer: Sendable {
    public let config: TransformerConfig
    public let layout: ParameterLayout
    public let slots: TransformerSlots

    public init(config: TransformerConfig) {
        self.config = config
        let c = config.width, a = config.attentionWidth, hdn = config.hiddenWidth
        var l = ParameterLayout()
        let idTable = l.add("embed.id", shape: [config.identifiers, config.idDim], frozen: true)
        let timeFreqs = l.add("embed.time.freqs", shape: [max(config.timeDim > 0 ? config.timeFrequencies : 0, 0)], frozen: true)
        let timeW = l.add("embed.time.w", shape: [config.timeDim > 0 ? 2 * config.timeFrequencies : 0, config.timeDim])
        let timeB = l.add("embed.time.b", shape: [config.timeDim])
        let condition = l.add("embed.condition", shape: [config.condDim])
        let contextFreqs = l.add("context.freqs", shape: [config.contextFrequencies], frozen: true)
        var blocks: [BlockSlots] = []
        for i in 0..<config.layers {
            let p = "block\(i)."
            blocks.append(BlockSlots(
                ln1w: l.add(p + "ln1.w", shape: [c]), ln1b: l.add(p + "ln1.b", shape: [c]),
                qkvW: l.add(p + "qkv.w", shape: [c, 3 * a]), qkvB: l.add(p + "qkv.b", shape: [3 * a]),
                projW: l.add(p + "proj.w", shape: [a, c]), projB: l.add(p + "proj.b", shape: [c]),
                ln2w: l.add(p + "ln2.w", shape: [c]), ln2b: l.add(p + "ln2.b", shape: [c]),
                upW: l.add(p + "up.w", shape: [c, hdn]), upB: l.add(p + "up.b", shape: [hdn]),
                downW: l.add(p + "down.w", shape: [hdn, c]), downB: l.add(p + "down.b", shape: [c]),
                ctxW: l.add(p + "context.w", shape: [2 * config.contextFrequencies, c]),
                ctxB: l.add(p + "context.b", shape: [c])))
        }
        let lnfW = l.add("final.ln.w", shape: [c]), lnfB = l.add("final.ln.b", shape: [c])
        let headW = l.add("head.w", shape: [c, 1]), headB = l.add("head.b", shape: [1])
        layout = l
        slots = TransformerSlots(idTable: idTable, timeFreqs: timeFreqs, timeW: timeW, timeB: timeB,
                                 condition: condition, contextFreqs: contextFreqs, blocks: blocks,
                                 lnfW: lnfW, lnfB: lnfB, headW: headW, headB: headB)
    }

    /// Fresh parameters: block linear weights N(0, 2 / (layers * fan_in)) (variance scaling 2/L, as in
    /// the reference), other linear weights N(0, 1/fan_in), biases 0, LayerNorm 1/0, identifier rows
    /// orthonormal, Fourier frequencies N(0, std^2), condition vector N(0, conditionInitStd^2).
    public func initialParameters(key: RandomKey) -> Arena {
        let arena = Arena(layout: layout)
        var rng = RandomStream(key: key)
        for slot in layout.slots {
            let p = arena.pointer(slot)
            switch slot.name {
            case "embed.id":
                orthonormalRows(p, rows: config.identifiers, cols: config.idDim, rng: &rng)
            case "embed.time.freqs":
                rng.fillNormal(p, count: slot.count, std: config.timeFrequencyStd)
            case "context.freqs":
                rng.fillNormal(p, count: slot.count, std: config.contextFrequencyStd)
            case "embed.condition":
                rng.fillNormal(p, count: slot.count, std: config.conditionInitStd)
            case _ where slot.name.hasSuffix("ln1.w") || slot.name.hasSuffix("ln2.w") || slot.name.hasSuffix("ln.w"):
                p.update(repeating: 1, count: slot.count)
            case _ where slot.shape.count == 2 && slot.count > 0 && slot.name.hasPrefix("block"):
                rng.fillNormal(p, count: slot.count, std: (2 / Float(config.layers * slot.shape[0])).squareRoot())
            case _ where slot.shape.count == 2 && slot.count > 0:
                rng.fillNormal(p, count: slot.count, std: 1 / Float(slot.shape[0]).squareRoot())
            default:
                break  // biases and LayerNorm shifts start at 0
            }
        }
        return arena
    }

    /// Fills p (rows, cols) with orthonormal rows (or orthonormal columns if rows > cols), by Gram-Schmidt.
    private func orthonormalRows(_ p: UnsafeMutablePointer<Float>, rows: Int, cols: Int, rng: inout RandomStream) {
        let transposed = rows > cols
        let (n, m) = transposed ? (cols, rows) : (rows, cols)  // n vectors of length m, n <= m
        var v = [[Double]](repeating: [Double](repeating: 0, count: m), count: n)
        for i in 0..<n {
            repeat {
                for k in 0..<m { v[i][k] = rng.normal() }
                for j in 0..<i {
                    var dot = 0.0
                    for k in 0..<m { dot += v[i][k] * v[j][k] }
                    for k in 0..<m { v[i][k] -= dot * v[j][k] }
                }
                let norm = v[i].reduce(0) { $0 + $1 * $1 }.squareRoot()
                if norm > 1e-6 { for k in 0..<m { v[i][k] /= norm }; break }
            } while true
        }
        for i in 0..<n {
            for k in 0..<m {
                if transposed { p[k * cols + i] = Float(v[i][k]) } else { p[i * cols + k] = Float(v[i][k]) }
            }
        }
    }
}
