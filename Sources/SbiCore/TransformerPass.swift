// Forward and backward passes of `Transformer` over preallocated activations.

/// Activations of one block, all (R, .) with R = capacity * tokens rows, except att and ctx.
final class BlockActivations {
    let ln1, ln1Mean, ln1Rstd, qkv, attOut, att, mid, ln2, ln2Mean, ln2Rstd, up, gelu, ctxPre, ctx: FloatBuffer
    /// `training`: att keeps every head's probabilities for the backward; otherwise one (T,Tp) scratch.
    init(rows: Int, examples: Int, config c: TransformerConfig, shape: AttentionShape, training: Bool) {
        ln1 = FloatBuffer(rows * c.width); ln1Mean = FloatBuffer(rows); ln1Rstd = FloatBuffer(rows)
        qkv = FloatBuffer(rows * 3 * c.attentionWidth); attOut = FloatBuffer(rows * c.attentionWidth)
        att = FloatBuffer((training ? examples * c.heads : 1) * shape.tokens * shape.paddedTokens)
        mid = FloatBuffer(rows * c.width)
        ln2 = FloatBuffer(rows * c.width); ln2Mean = FloatBuffer(rows); ln2Rstd = FloatBuffer(rows)
        up = FloatBuffer(rows * c.hiddenWidth); gelu = FloatBuffer(rows * c.hiddenWidth)
        ctxPre = FloatBuffer(examples * c.width); ctx = FloatBuffer(examples * c.width)
    }
}

/// Everything one forward/backward needs, sized once for `capacity` examples of `tokens` tokens.
/// With `training == false`, blocks share one set of activations (forward only, much less memory).
public final class TransformerWorkspace: @unchecked Sendable {
    public let capacity: Int
    public let tokens: Int
    public let training: Bool
    let shape: AttentionShape
    let keep: FloatBuffer
    /// residual stream entering block l (l = 0...L); residual[0] is the token embedding
    let residual: [FloatBuffer]
    let timeFeatures: FloatBuffer, timeLinear: FloatBuffer
    let contextFeatures: FloatBuffer
    let blocks: [BlockActivations]
    let lnf: FloatBuffer, lnfMean: FloatBuffer, lnfRstd: FloatBuffer
    /// Raw network output per token (B,T).
    public let output: FloatBuffer
    /// Gradient of the backward's loss with respect to each token's input value (B,T).
    public let valueGradient: FloatBuffer
    let scratch: AttentionScratch
    // backward scratch
    let dres, dln, dqkv, dattOut, dup, dgelu, dctx, dctxPre, dtime: FloatBuffer

    public init(config c: TransformerConfig, capacity: Int, tokens: Int, training: Bool) {
        self.capacity = capacity; self.tokens = tokens; self.training = training
        let rows = capacity * tokens
        shape = AttentionShape(batch: capacity, tokens: tokens, heads: c.heads, keySize: c.keySize)
        keep = FloatBuffer(capacity * tokens * shape.paddedTokens)
        residual = (0...(training ? c.layers : 0)).map { _ in FloatBuffer(rows * c.width) }
        timeFeatures = FloatBuffer(c.timeDim > 0 ? rows * 2 * c.timeFrequencies : 0)
        timeLinear = FloatBuffer(rows * c.timeDim)
        contextFeatures = FloatBuffer(capacity * 2 * c.contextFrequencies)
        blocks = (0..<(training ? c.layers : 1)).map { _ in
            BlockActivations(rows: rows, examples: capacity, config: c,
                             shape: AttentionShape(batch: capacity, tokens: tokens, heads: c.heads, keySize: c.keySize), training: training)
        }
        lnf = FloatBuffer(rows * c.width); lnfMean = FloatBuffer(rows); lnfRstd = FloatBuffer(rows)
        output = FloatBuffer(rows)
        valueGradient = FloatBuffer(rows)
        scratch = AttentionScratch(tokens: tokens, keySize: c.keySize)
        let g = training ? rows : 0, ge = training ? capacity : 0
        dres = FloatBuffer(g * c.width); dln = FloatBuffer(g * c.width)
        dqkv = FloatBuffer(g * 3 * c.attentionWidth); dattOut = FloatBuffer(g * c.attentionWidth)
        dup = FloatBuffer(g * c.hiddenWidth); dgelu = FloatBuffer(g * c.hiddenWidth)
        dctx = FloatBuffer(ge * c.width); dctxPre = FloatBuffer(ge * c.width)
        dtime = FloatBuffer(g * c.timeDim)
    }
}

extension Transformer {
    /// Runs the network on `input` (batch <= workspace capacity, tokens <= the workspace's).
    /// Raw outputs land in `ws.output` (B,T); `ws.valueGradient` is reset to 0.
    public func forward(_ params: Arena, _ input: TokenBatchView, _ ws: TransformerWorkspace) {
        precondition(input.tokens <= ws.tokens && input.batch <= ws.capacity, "batch does not fit the workspace")
        let c = config, cw = c.width, b = input.batch, t = input.tokens, rows = b * t
        var shape = ws.shape; shape.batch = b; shape.tokens = t
        let P = { (s: TensorSlot) in UnsafePointer(params.pointer(s)) }
        // without a mask every valid pair is kept, and attention reads no keep mask
        var keep: UnsafePointer<Float>? = nil
        if let allowed = input.allowed {
            buildKeepMask(ws.keep.base, UnsafePointer(allowed), input.counts, shape)
            keep = UnsafePointer(ws.keep.base)
        }
        ws.valueGradient.base.update(repeating: 0, count: rows)

        // Token assembly: [id | value x valueDim | time features | condition * observed]
        let h0 = ws.residual[0].base
        if c.timeDim > 0 { timeEmbedding(params, input, ws) }
        let idTable = P(slots.idTable), cond = P(slots.condition)
        let valueOff = c.idDim, timeOff = c.idDim + c.valueDim, condOff = timeOff + c.timeDim
        let timeLinear = UnsafePointer(ws.timeLinear.base)
        for r in 0..<rows {
            let h = h0 + r &* cw
            // plain loops (a memmove call per 13-float row cost more than the copy), wrapping index
            // arithmetic (overflow checks kept them scalar)
            let id = idTable + Int(input.ids[r]) &* c.idDim, v = input.values[r]
            for k in 0..<c.idDim { h[k] = id[k] }
            for k in 0..<c.valueDim { h[valueOff &+ k] = v }
            let ht = input.hasTime[r], time = timeLinear + r &* c.timeDim
            for k in 0..<c.timeDim { h[timeOff &+ k] = time[k] * ht }
            let o = input.observed[r]
            for k in 0..<c.condDim { h[condOff &+ k] = cond[k] * o }
        }
        contextFeatures(params, input, ws)

        let training = ws.training
        for (l, s) in slots.blocks.enumerated() {
            let a = ws.blocks[training ? l : 0]
            let hin = ws.residual[training ? l : 0].base, hout = ws.residual[training ? l + 1 : 0].base
            layerNormForward(a.ln1.base, a.ln1Mean.base, a.ln1Rstd.base, hin, P(s.ln1w), P(s.ln1b), rows, cw)
            linearForward(a.qkv.base, a.ln1.base, P(s.qkvW), P(s.qkvB), rows, cw, 3 * c.attentionWidth)
            attentionForward(a.attOut.base, a.att.base, a.qkv.base, keep, input.counts, shape, ws.scratch,
                             keepProbabilities: ws.training)
            linearForward(a.mid.base, a.attOut.base, P(s.projW), P(s.projB), rows, c.attentionWidth, cw)
            for i in 0..<(rows * cw) { a.mid.base[i] += hin[i] }
            layerNormForward(a.ln2.base, a.ln2Mean.base, a.ln2Rstd.base, a.mid.base, P(s.ln2w), P(s.ln2b), rows, cw)
            linearForward(a.up.base, a.ln2.base, P(s.upW), P(s.upB), rows, cw, c.hiddenWidth)
            geluForward(a.gelu.base, a.up.base, rows * c.hiddenWidth)
            linearForward(a.ctxPre.base, ws.contextFeatures.base, P(s.ctxW), P(s.ctxB), b, 2 * c.contextFrequencies, cw)
            geluForward(a.ctx.base, a.ctxPre.base, b * cw)
            linearForward(hout, a.gelu.base, P(s.downW), P(s.downB), rows, c.hiddenWidth, cw)
            addResidualAndContext(hout, a.mid.base, a.ctx.base, b, t, cw)
        }
        let last = ws.residual[training ? c.layers : 0].base
        layerNormForward(ws.lnf.base, ws.lnfMean.base, ws.lnfRstd.base, last, P(slots.lnfW), P(slots.lnfB), rows, cw)
        linearForward(ws.output.base, ws.lnf.base, P(slots.headW), P(slots.headB), rows, cw, 1)
    }

    /// ws.contextFeatures (B, 2F) = Fourier features of each example's diffusion time. A sampler's step
    /// gives every example the same time: its sines are then computed once and copied (the same bits).
    func contextFeatures(_ params: Arena, _ input: TokenBatchView, _ ws: TransformerWorkspace) {
        let b = input.batch, width = 2 * config.contextFrequencies
        let shared = b > 1 && (1..<b).allSatisfy { input.diffusionTime[$0].bitPattern == input.diffusionTime[0].bitPattern }
        fourierForward(ws.contextFeatures.base, input.diffusionTime, UnsafePointer(params.pointer(slots.contextFreqs)),
                       shared ? 1 : b, config.contextFrequencies)
        guard shared else { return }
        for e in 1..<b { (ws.contextFeatures.base + e * width).update(from: ws.contextFeatures.base, count: width) }
    }

    /// ws.timeLinear (B*T, timeDim) = Linear(Fourier features of the token times), 0 features for
    /// tokens without a time. At inference, when every example carries example 0's times (a sampling
    /// block: one layout, many samples), the T rows of example 0 are computed once and copied to the
    /// others (training keeps every row's features for the backward).
    func timeEmbedding(_ params: Arena, _ input: TokenBatchView, _ ws: TransformerWorkspace) {
        let c = config, nf = c.timeFrequencies, t = input.tokens, rows = input.batch * t
        let P = { (s: TensorSlot) in UnsafePointer(params.pointer(s)) }
        let shared = input.batch > 1 && !ws.training
            && (t..<rows).allSatisfy { input.times[$0] == input.times[$0 % t] && input.hasTime[$0] == input.hasTime[$0 % t] }
        let computed = shared ? t : rows
        fourierForward(ws.timeFeatures.base, input.times, P(slots.timeFreqs), computed, nf)
        for r in 0..<computed where input.hasTime[r] == 0 {
            (ws.timeFeatures.base + r * 2 * nf).update(repeating: 0, count: 2 * nf)
        }
        linearForward(ws.timeLinear.base, ws.timeFeatures.base, P(slots.timeW), P(slots.timeB), computed, 2 * nf, c.timeDim)
        guard shared else { return }
        for e in 1..<input.batch { (ws.timeLinear.base + e * t * c.timeDim).update(from: ws.timeLinear.base, count: t * c.timeDim) }
    }

    /// Backpropagates dOutput (B,T) through the last `forward` on this workspace (training workspaces only).
    /// Accumulates (+=) into `grads` and into `ws.valueGradient`.
    /// Long on purpose: the kernel sequence of `forward` in reverse, over one workspace, reads best as
    /// one listing against it; split, the shared buffers and shapes would be passed between pieces by hand.
    public func backward(_ params: Arena, _ grads: Arena, _ input: TokenBatchView,
                         _ ws: TransformerWorkspace, dOutput: UnsafePointer<Float>) {
        precondition(ws.training, "backward needs a training workspace")
        precondition(input.tokens <= ws.tokens && input.batch <= ws.capacity, "batch does not fit the workspace")
        let c = config, cw = c.width, b = input.batch, t = input.tokens, rows = b * t
        var shape = ws.shape; shape.batch = b; shape.tokens = t
        let P = { (s: TensorSlot) in UnsafePointer(params.pointer(s)) }
        let G = { (s: TensorSlot) in grads.pointer(s) }
        let dres = ws.dres.base, dln = ws.dln.base

        // head and final LayerNorm
        linearBackward(dln, G(slots.headW), G(slots.headB), dOutput, ws.lnf.base, P(slots.headW), rows, cw, 1,
                       overwriteInput: true)
        dres.update(repeating: 0, count: rows * cw)
        layerNormBackward(dres, G(slots.lnfW), G(slots.lnfB), dln, ws.residual[c.layers].base, P(slots.lnfW),
                          ws.lnfMean.base, ws.lnfRstd.base, rows, cw)

        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            let s = slots.blocks[l], a = ws.blocks[l], hin = ws.residual[l].base
            // h' = mid + down(gelu) + ctx: the context gradient is the sum over each example's tokens
            ws.dctx.zero()
            addRowSumsPerExample(ws.dctx.base, dres, b, t, cw)
            geluBackward(ws.dctxPre.base, a.ctxPre.base, ws.dctx.base, b * cw, overwrite: true)
            linearBackward(nil, G(s.ctxW), G(s.ctxB), ws.dctxPre.base, ws.contextFeatures.base, P(s.ctxW), b,
                           2 * c.contextFrequencies, cw)
            linearBackward(ws.dgelu.base, G(s.downW), G(s.downB), dres, a.gelu.base, P(s.downW), rows, c.hiddenWidth, cw,
                           overwriteInput: true)
            geluBackward(ws.dup.base, a.up.base, ws.dgelu.base, rows * c.hiddenWidth, overwrite: true)
            linearBackward(dln, G(s.upW), G(s.upB), ws.dup.base, a.ln2.base, P(s.upW), rows, cw, c.hiddenWidth,
                           overwriteInput: true)
            // d mid = d h' (the residual) + the LayerNorm's part: accumulated into dres in place, which
            // from here holds d mid (every read of d h' is above)
            layerNormBackward(dres, G(s.ln2w), G(s.ln2b), dln, a.mid.base, P(s.ln2w), a.ln2Mean.base, a.ln2Rstd.base, rows, cw)
            // mid = h + proj(attn): the residual passes d mid through
            linearBackward(ws.dattOut.base, G(s.projW), G(s.projB), dres, a.attOut.base, P(s.projW), rows, c.attentionWidth, cw,
                           overwriteInput: true)
            ws.dqkv.base.update(repeating: 0, count: rows * 3 * c.attentionWidth)
            attentionBackward(ws.dqkv.base, ws.dattOut.base, a.qkv.base, a.att.base, input.counts, shape, ws.scratch)
            linearBackward(dln, G(s.qkvW), G(s.qkvB), ws.dqkv.base, a.ln1.base, P(s.qkvW), rows, cw, 3 * c.attentionWidth,
                           overwriteInput: true)
            // d h = d mid + the first LayerNorm's part, in place again
            layerNormBackward(dres, G(s.ln1w), G(s.ln1b), dln, hin, P(s.ln1w), a.ln1Mean.base, a.ln1Rstd.base, rows, cw)
        }

        // token assembly: value slots sum into the value gradient; condition and time features get theirs
        let valueOff = c.idDim, timeOff = c.idDim + c.valueDim, condOff = timeOff + c.timeDim
        let dcond = G(slots.condition)
        for r in 0..<rows {
            let d = dres + r * cw
            var dv: Float = 0
            for k in 0..<c.valueDim { dv += d[valueOff + k] }
            ws.valueGradient.base[r] += dv
            let o = input.observed[r]
            if o != 0 { for k in 0..<c.condDim { dcond[k] += o * d[condOff + k] } }
            let ht = input.hasTime[r]
            for k in 0..<c.timeDim { ws.dtime.base[r * c.timeDim + k] = d[timeOff + k] * ht }
        }
        if c.timeDim > 0 {
            linearBackward(nil, G(slots.timeW), G(slots.timeB), ws.dtime.base, ws.timeFeatures.base, P(slots.timeW),
                           rows, 2 * c.timeFrequencies, c.timeDim)
        }
    }
}
