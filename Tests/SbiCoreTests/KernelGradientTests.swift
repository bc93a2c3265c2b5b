import XCTest
@testable import SbiCore

/// Finite-difference checks of every layer kernel on tiny sizes.
/// Tolerance: relative 2e-2 (Float32 kernels, eps 1e-2, loss in Double), floor 1e-2.
final class KernelGradientTests: XCTestCase {
    func testLinear() {
        let (r, c, o) = (3, 4, 5)
        let x = randomBuffer(r * c, seed: 1), w = randomBuffer(c * o, seed: 2), b = randomBuffer(o, seed: 3)
        let out = FloatBuffer(r * o), lw = randomBuffer(r * o, seed: 4)
        let loss = { () -> Double in
            linearForward(out.base, x.base, w.base, b.base, r, c, o)
            return weightedSum(out.base, lw.base, r * o)
        }
        let dx = FloatBuffer(r * c), dw = FloatBuffer(c * o), db = FloatBuffer(o)
        _ = loss()
        linearBackward(dx.base, dw.base, db.base, lw.base, x.base, w.base, r, c, o)
        checkGradient("dinp", x.base, count: r * c, analytic: dx.array, loss: loss)
        checkGradient("dweight", w.base, count: c * o, analytic: dw.array, loss: loss)
        checkGradient("dbias", b.base, count: o, analytic: db.array, loss: loss)
        // calling backward again doubles every gradient
        let (dx1, dw1, db1) = (dx.array, dw.array, db.array)
        linearBackward(dx.base, dw.base, db.base, lw.base, x.base, w.base, r, c, o)
        assertDoubled(dx.array, dx1, "dx")
        assertDoubled(dw.array, dw1, "dw")
        assertDoubled(db.array, db1, "db")
    }

    func testLayerNorm() {
        let (r, c) = (3, 6)
        let x = randomBuffer(r * c, seed: 5), w = randomBuffer(c, seed: 6), b = randomBuffer(c, seed: 7)
        let out = FloatBuffer(r * c), mean = FloatBuffer(r), rstd = FloatBuffer(r), lw = randomBuffer(r * c, seed: 8)
        let loss = { () -> Double in
            layerNormForward(out.base, mean.base, rstd.base, x.base, w.base, b.base, r, c)
            return weightedSum(out.base, lw.base, r * c)
        }
        let dx = FloatBuffer(r * c), dw = FloatBuffer(c), db = FloatBuffer(c)
        _ = loss()
        layerNormBackward(dx.base, dw.base, db.base, lw.base, x.base, w.base, mean.base, rstd.base, r, c)
        checkGradient("dinp", x.base, count: r * c, analytic: dx.array, eps: 5e-3, loss: loss)
        checkGradient("dweight", w.base, count: c, analytic: dw.array, loss: loss)
        checkGradient("dbias", b.base, count: c, analytic: db.array, loss: loss)
        let dx1 = dx.array
        layerNormBackward(dx.base, dw.base, db.base, lw.base, x.base, w.base, mean.base, rstd.base, r, c)
        assertDoubled(dx.array, dx1, "dx")
    }

    /// The method's width (50) runs LayerNorm with the width as a constant (unrolled loops); it must
    /// give the bits of the same code with the width known only at run time, forward and backward.
    func testLayerNormAtTheMethodWidthIsTheGenericArithmetic() {
        let (r, c) = (7, 50)
        let opaqueWidth = Int(ProcessInfo.processInfo.environment["SBIWATCH_TEST_NO_SUCH_WIDTH"] ?? "50")!
        let x = randomBuffer(r * c, seed: 15, std: 3), w = randomBuffer(c, seed: 16), b = randomBuffer(c, seed: 17)
        let g = randomBuffer(r * c, seed: 18)
        func run(_ forward: (FloatBuffer, FloatBuffer, FloatBuffer) -> Void,
                 _ backward: (FloatBuffer, FloatBuffer, FloatBuffer, FloatBuffer, FloatBuffer) -> Void) -> [[Float]] {
            let out = FloatBuffer(r * c), mean = FloatBuffer(r), rstd = FloatBuffer(r)
            let dx = FloatBuffer(r * c), dw = FloatBuffer(c), db = FloatBuffer(c)
            forward(out, mean, rstd)
            backward(dx, dw, db, mean, rstd)
            return [out.array, mean.array, rstd.array, dx.array, dw.array, db.array]
        }
        let constant = run({ layerNormForward($0.base, $1.base, $2.base, x.base, w.base, b.base, r, c) },
                           { layerNormBackward($0.base, $1.base, $2.base, g.base, x.base, w.base, $3.base, $4.base, r, c) })
        let generic = run({ layerNormForwardRows($0.base, $1.base, $2.base, x.base, w.base, b.base, r, opaqueWidth) },
                          { layerNormBackwardRows($0.base, $1.base, $2.base, g.base, x.base, w.base, $3.base, $4.base, r, opaqueWidth) })
        XCTAssert(constant[3].contains { $0 != 0 })
        for (name, (a, z)) in zip(["out", "mean", "rstd", "dx", "dweight", "dbias"], zip(constant, generic)) {
            XCTAssertEqual(a.map(\.bitPattern), z.map(\.bitPattern), name)
        }
    }

    func testGELUAndResidual() {
        let n = 21  // not a multiple of 8: exercises the vector tail
        let x = randomBuffer(n, seed: 9, std: 2), y = randomBuffer(n, seed: 10), out = FloatBuffer(n)
        let lw = randomBuffer(n, seed: 11)
        let gelu = { () -> Double in geluForward(out.base, x.base, n); return weightedSum(out.base, lw.base, n) }
        _ = gelu()
        // gelu(0) = 0, gelu(x) -> x for large x, close to the exact erf form elsewhere
        let probe = FloatBuffer(3), probeOut = FloatBuffer(3)
        probe.base[0] = 0; probe.base[1] = 6; probe.base[2] = 1
        geluForward(probeOut.base, probe.base, 3)
        XCTAssertEqual(probeOut.base[0], 0, accuracy: 1e-7)
        XCTAssertEqual(probeOut.base[1], 6, accuracy: 1e-5)
        XCTAssertEqual(probeOut.base[2], 0.841192, accuracy: 1e-4)
        let dx = FloatBuffer(n)
        geluBackward(dx.base, x.base, lw.base, n)
        checkGradient("gelu", x.base, count: n, analytic: dx.array, eps: 1e-3, loss: gelu)
        let dx1 = dx.array
        geluBackward(dx.base, x.base, lw.base, n)
        assertDoubled(dx.array, dx1, "dx")

        let residual = { () -> Double in residualForward(out.base, x.base, y.base, n); return weightedSum(out.base, lw.base, n) }
        let da = FloatBuffer(n), db = FloatBuffer(n)
        residualBackward(da.base, db.base, lw.base, n)
        checkGradient("residual a", x.base, count: n, analytic: da.array, loss: residual)
        checkGradient("residual b", y.base, count: n, analytic: db.array, loss: residual)
    }

    func testFourierFeatures() {
        let (r, f) = (4, 3)
        let x = randomBuffer(r, seed: 12, std: 0.3), freqs = randomBuffer(f, seed: 13)
        let out = FloatBuffer(r * 2 * f), lw = randomBuffer(r * 2 * f, seed: 14)
        let loss = { () -> Double in
            fourierForward(out.base, x.base, freqs.base, r, f)
            return weightedSum(out.base, lw.base, r * 2 * f)
        }
        _ = loss()
        XCTAssertEqual(out.base[f] * out.base[f] + out.base[0] * out.base[0], 1, accuracy: 1e-5)
        let dx = FloatBuffer(r)
        fourierBackward(dx.base, lw.base, x.base, freqs.base, r, f)
        checkGradient("fourier", x.base, count: r, analytic: dx.array, eps: 1e-3, loss: loss)
    }

    /// Attention with an attention mask and a padded example.
    func testMaskedAttention() {
        let shape = AttentionShape(batch: 2, tokens: 5, heads: 2, keySize: 3)
        let (b, t) = (shape.batch, shape.tokens)
        let qkv = randomBuffer(b * t * shape.qkvStride, seed: 15)
        let counts = UnsafeMutablePointer<Int32>.allocate(capacity: 2)
        counts[0] = 5; counts[1] = 3
        let allowed = UnsafeMutablePointer<UInt8>.allocate(capacity: b * t * t)
        var rng = RandomStream(seed: 16)
        for i in 0..<(b * t * t) { allowed[i] = rng.uniform() < 0.6 ? 1 : 0 }
        let keep = FloatBuffer(b * t * shape.paddedTokens)
        buildKeepMask(keep.base, allowed, counts, shape)
        let out = FloatBuffer(b * t * shape.outStride), att = FloatBuffer(b * shape.heads * t * shape.paddedTokens)
        let scratch = AttentionScratch(tokens: t, keySize: shape.keySize)
        let lw = randomBuffer(out.count, seed: 17)
        let loss = { () -> Double in
            attentionForward(out.base, att.base, qkv.base, keep.base, counts, shape, scratch)
            return weightedSum(out.base, lw.base, out.count)
        }
        _ = loss()
        // every valid query's probabilities over keys sum to 1; hidden keys get exactly 0
        let tp = shape.paddedTokens
        for e in 0..<b { for h in 0..<shape.heads { for i in 0..<Int(counts[e]) {
            var s: Float = 0
            for j in 0..<t {
                let pij = att.base[((e * shape.heads + h) * t + j) * tp + i]
                s += pij
                if keep.base[(e * t + j) * tp + i] == 0 { XCTAssertEqual(pij, 0) }
                let maskAllows = allowed[(e * t + i) * t + j] != 0 || i == j
                XCTAssertEqual(keep.base[(e * t + j) * tp + i] != 0, maskAllows && j < Int(counts[e]))
            }
            XCTAssertEqual(s, 1, accuracy: 1e-5)
        } } }
        let dqkv = FloatBuffer(qkv.count)
        attentionBackward(dqkv.base, lw.base, qkv.base, att.base, counts, shape, scratch)
        checkGradient("attention dqkv", qkv.base, count: qkv.count, analytic: dqkv.array, eps: 3e-3, loss: loss)
        let first = dqkv.array
        attentionBackward(dqkv.base, lw.base, qkv.base, att.base, counts, shape, scratch)
        assertDoubled(dqkv.array, first, "dqkv")
        counts.deallocate(); allowed.deallocate()
    }
    /// Without a keep mask (nil) the softmax loops read none: outputs and probabilities are the same
    /// bits as with the all-kept mask of a nil `allowed`, padded queries included, for training and inference.
    func testDenseAttentionMatchesTheKeptMaskBitForBit() {
        let shape = AttentionShape(batch: 3, tokens: 11, heads: 2, keySize: 5)
        let (b, t) = (shape.batch, shape.tokens)
        let qkv = randomBuffer(b * t * shape.qkvStride, seed: 21)
        let counts = UnsafeMutablePointer<Int32>.allocate(capacity: b)
        counts[0] = 11; counts[1] = 4; counts[2] = 9
        let keep = FloatBuffer(b * t * shape.paddedTokens)
        buildKeepMask(keep.base, nil, counts, shape)
        let scratch = AttentionScratch(tokens: t, keySize: shape.keySize)
        for training in [true, false] {
            let attCount = (training ? b * shape.heads : 1) * t * shape.paddedTokens
            let masked = FloatBuffer(b * t * shape.outStride), dense = FloatBuffer(b * t * shape.outStride)
            let attMasked = FloatBuffer(attCount), attDense = FloatBuffer(attCount)
            attentionForward(masked.base, attMasked.base, qkv.base, keep.base, counts, shape, scratch,
                             keepProbabilities: training)
            attentionForward(dense.base, attDense.base, qkv.base, nil, counts, shape, scratch,
                             keepProbabilities: training)
            XCTAssertEqual(masked.array, dense.array, "outputs (training \(training))")
            if training { XCTAssertEqual(attMasked.array, attDense.array, "probabilities") }
            XCTAssert(masked.array.contains { $0 != 0 })
        }
        counts.deallocate()
    }
}
