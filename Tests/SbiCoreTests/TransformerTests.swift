import XCTest
@testable import SbiCore

/// A tiny network: 2 layers, 2 heads of size 3, width 9 (id 3 | value 2 | time 2 | condition 2).
func tinyConfig(layers: Int = 2) -> TransformerConfig {
    TransformerConfig(layers: layers, heads: 2, keySize: 3, widening: 2, idDim: 3, valueDim: 2, timeDim: 2,
                      condDim: 2, identifiers: 4, timeFrequencies: 3, timeFrequencyStd: 0.5,
                      contextFrequencies: 3, contextFrequencyStd: 1)
}

/// 3 examples of up to 5 tokens (counts 5, 3, 4), a random attention mask, mixed observed and time flags.
func tinyBatch(seed: UInt64 = 21, masked: Bool = true) -> TokenBatch {
    let batch = TokenBatch(capacity: 3, tokens: 5, usesMask: masked)
    var rng = RandomStream(seed: seed)
    let counts: [Int32] = [5, 3, 4]
    for e in 0..<3 {
        batch.counts[e] = counts[e]
        batch.diffusionTime[e] = Float(rng.uniform(0.05, 1))
        for i in 0..<5 {
            let r = e * 5 + i
            let valid = i < Int(counts[e])
            batch.ids[r] = valid ? Int32(rng.int(below: 4)) : 0
            batch.values[r] = valid ? Float(rng.normal()) : 0
            batch.observed[r] = valid && rng.uniform() < 0.4 ? 1 : 0
            batch.hasTime[r] = valid && i % 2 == 1 ? 1 : 0
            batch.times[r] = batch.hasTime[r] == 1 ? Float(rng.uniform(0, 2)) : 0
            for j in 0..<5 { batch.allowedStorage[r * 5 + j] = rng.uniform() < 0.6 ? 1 : 0 }
        }
    }
    return batch
}

/// Loss weights: random on valid tokens, 0 on padding.
func lossWeights(_ batch: TokenBatch, seed: UInt64) -> FloatBuffer {
    let w = randomBuffer(batch.capacity * batch.tokens, seed: seed)
    for e in 0..<batch.capacity { for i in Int(batch.counts[e])..<batch.tokens { w.base[e * batch.tokens + i] = 0 } }
    return w
}

final class TransformerTests: XCTestCase {
    /// Whole 2-layer network with attention mask, padding and time tokens: every trainable
    /// parameter and every input value against central differences (relative tolerance 3e-2, floor 1e-2).
    func testWholeNetworkGradients() {
        let model = Transformer(config: tinyConfig())
        let params = model.initialParameters(key: RandomKey(seed: 1))
        let batch = tinyBatch()
        let ws = TransformerWorkspace(config: model.config, capacity: 3, tokens: 5, training: true)
        let w = lossWeights(batch, seed: 22)
        let loss = { () -> Double in
            model.forward(params, batch.view, ws)
            return weightedSum(ws.output.base, w.base, 15)
        }
        _ = loss()
        let grads = Arena(layout: model.layout)
        model.backward(params, grads, batch.view, ws, dOutput: w.base)
        let valueGrad = ws.valueGradient.array
        var checked = 0
        for slot in model.layout.slots where !slot.frozen && slot.count > 0 {
            checkGradient(slot.name, params.pointer(slot), count: slot.count, analytic: grads.values(slot),
                          eps: 1e-2, tolerance: 3e-2, floor: 1e-2, loss: loss)
            checked += slot.count
        }
        XCTAssertEqual(checked, model.layout.trainableCount)
        checkGradient("values", batch.values, count: 15, analytic: valueGrad, eps: 1e-2, tolerance: 3e-2, floor: 1e-2, loss: loss)

        // a second backward doubles every gradient
        let first = Array(UnsafeBufferPointer(start: grads.base, count: grads.count))
        _ = loss()
        model.backward(params, grads, batch.view, ws, dOutput: w.base)
        model.backward(params, grads, batch.view, ws, dOutput: w.base)
        let third = Array(UnsafeBufferPointer(start: grads.base, count: grads.count))
        assertDoubled(third.map { $0 - 0 }, first.map { $0 * 1.5 }, "parameter gradients (3x = 2 x 1.5x)")
        assertDoubled(ws.valueGradient.array, valueGrad, "value gradients")
    }

    /// Perturbing a key the mask hides, or a padding token, leaves every other output bit-identical.
    func testHiddenAndPaddingTokensCannotInfluenceOthers() {
        let model = Transformer(config: tinyConfig())
        let params = model.initialParameters(key: RandomKey(seed: 2))
        let batch = tinyBatch()
        // example 0: token 4 is hidden from tokens 0..3 (but sees itself)
        for i in 0..<4 { batch.allowedStorage[i * 5 + 4] = 0 }
        let ws = TransformerWorkspace(config: model.config, capacity: 3, tokens: 5, training: false)
        model.forward(params, batch.view, ws)
        let before = ws.output.array
        batch.values[4] += 3.7; batch.ids[4] = 3; batch.observed[4] = 1 - batch.observed[4]
        // example 1 has 3 tokens: tokens 3 and 4 are padding
        batch.values[5 + 3] = 1234.5; batch.ids[5 + 4] = 2; batch.times[5 + 3] = 9; batch.hasTime[5 + 4] = 1
        model.forward(params, batch.view, ws)
        let after = ws.output.array
        for r in 0..<4 { XCTAssertEqual(before[r].bitPattern, after[r].bitPattern, "token \(r) of example 0 changed") }
        XCTAssertNotEqual(before[4], after[4], "the perturbed token itself must change")
        for r in 5..<8 { XCTAssertEqual(before[r].bitPattern, after[r].bitPattern, "token \(r - 5) of example 1 changed") }
        for r in 10..<15 { XCTAssertEqual(before[r].bitPattern, after[r].bitPattern) }
    }

    /// Permuting an example's tokens (and its mask) permutes the outputs the same way.
    func testPermutationEquivariance() {
        let model = Transformer(config: tinyConfig())
        let params = model.initialParameters(key: RandomKey(seed: 3))
        let batch = tinyBatch()
        let ws = TransformerWorkspace(config: model.config, capacity: 3, tokens: 5, training: false)
        model.forward(params, batch.view, ws)
        let before = ws.output.array
        let perm = [3, 0, 4, 1, 2]  // new position k holds old token perm[k]
        let permuted = tinyBatch()
        for k in 0..<5 {
            let o = perm[k]
            permuted.ids[k] = batch.ids[o]; permuted.values[k] = batch.values[o]
            permuted.observed[k] = batch.observed[o]; permuted.times[k] = batch.times[o]; permuted.hasTime[k] = batch.hasTime[o]
            for m in 0..<5 { permuted.allowedStorage[k * 5 + m] = batch.allowedStorage[o * 5 + perm[m]] }
        }
        model.forward(params, permuted.view, ws)
        for k in 0..<5 { XCTAssertEqual(ws.output.base[k], before[perm[k]], accuracy: 1e-5) }
        XCTAssertNotEqual(before[0], before[1])
    }

    /// Chunks and threads do not change results: 1 thread with 1 chunk, and 2 threads with chunks of 1
    /// example, give bit-identical outputs, value gradients and parameter gradients (chunks of equal size);
    /// against one whole-batch pass the gradients agree to rounding.
    func testBatchParallelIsDeterministicAcrossThreads() {
        let model = Transformer(config: tinyConfig())
        let params = model.initialParameters(key: RandomKey(seed: 4))
        let batch = tinyBatch()
        let w = lossWeights(batch, seed: 23)
        let copyLoss = { (start: Int, count: Int, out: UnsafePointer<Float>, dout: UnsafeMutablePointer<Float>) -> Double in
            (dout).update(from: w.base + start * 5, count: count * 5)
            return weightedSum(out, w.base + start * 5, count * 5)
        }
        let oneThread = BatchParallel(model: model, capacity: 3, tokens: 5, training: true, threads: 1, chunkSize: 1)
        let twoThreads = BatchParallel(model: model, capacity: 3, tokens: 5, training: true, threads: 2, chunkSize: 1)
        let whole = BatchParallel(model: model, capacity: 3, tokens: 5, training: true, threads: 1, chunkSize: 3)
        let g1 = Arena(layout: model.layout), g2 = Arena(layout: model.layout), g3 = Arena(layout: model.layout)
        let l1 = oneThread.forwardBackward(params, g1, batch.view, loss: copyLoss)
        let l2 = twoThreads.forwardBackward(params, g2, batch.view, loss: copyLoss)
        let l3 = whole.forwardBackward(params, g3, batch.view, loss: copyLoss)
        XCTAssertEqual(twoThreads.threads, 2)
        XCTAssertEqual(l1.bitPattern, l2.bitPattern)
        XCTAssertEqual(oneThread.output.array, twoThreads.output.array)
        XCTAssertEqual(oneThread.valueGradient.array, twoThreads.valueGradient.array)
        for i in 0..<g1.count { XCTAssertEqual(g1.base[i].bitPattern, g2.base[i].bitPattern) }
        XCTAssertEqual(l1, l3, accuracy: 1e-4)
        for i in 0..<g1.count { XCTAssertEqual(g1.base[i], g3.base[i], accuracy: 1e-4 * max(1, abs(g3.base[i]))) }
        // the forward-only runner (softmax normalised after the value product) agrees with the
        // training pass to rounding, also with several examples per chunk (one attention scratch
        // reused across examples and heads), and is itself the same for any thread count
        let infer = BatchParallel(model: model, capacity: 3, tokens: 5, training: false, threads: 2, chunkSize: 1)
        infer.forward(params, batch.view)
        let inferOne = BatchParallel(model: model, capacity: 3, tokens: 5, training: false, threads: 1, chunkSize: 1)
        inferOne.forward(params, batch.view)
        XCTAssertEqual(infer.output.array, inferOne.output.array)
        let inferWhole = BatchParallel(model: model, capacity: 3, tokens: 5, training: false, threads: 1, chunkSize: 3)
        inferWhole.forward(params, batch.view)
        for (got, want) in [(infer, oneThread), (inferWhole, whole)] {
            let g = got.output.array, w = want.output.array
            for r in 0..<15 {
                XCTAssertEqual(g[r], w[r], accuracy: 1e-5 * max(1, abs(w[r])), "row \(r)")
            }
        }
    }

    /// A sampling block (every example with example 0's token times) computes the time embedding
    /// once and copies it: outputs equal the training pass's, which computes every row.
    func testSharedTokenTimesAreEmbeddedOnce() {
        let model = Transformer(config: tinyConfig())
        let params = model.initialParameters(key: RandomKey(seed: 4))
        let batch = tinyBatch()
        for e in 1..<3 { for i in 0..<5 {
            batch.times[e * 5 + i] = batch.times[i]; batch.hasTime[e * 5 + i] = batch.hasTime[i]
        } }
        let train = BatchParallel(model: model, capacity: 3, tokens: 5, training: true, threads: 1, chunkSize: 3)
        _ = train.forwardBackward(params, Arena(layout: model.layout), batch.view) { _, count, _, dout in
            dout.update(repeating: 0, count: count * 5); return 0
        }
        let infer = BatchParallel(model: model, capacity: 3, tokens: 5, training: false, threads: 1, chunkSize: 3)
        infer.forward(params, batch.view)
        let g = infer.output.array, w = train.output.array
        for r in 0..<15 { XCTAssertEqual(g[r], w[r], accuracy: 1e-5 * max(1, abs(w[r])), "row \(r)") }
        // and a change to one example's times reaches only that example
        batch.times[5 + 1] += 0.5
        let before = g
        infer.forward(params, batch.view)
        let after = infer.output.array
        XCTAssertEqual(Array(after[0..<5]), Array(before[0..<5]))
        XCTAssertNotEqual(Array(after[5..<10]), Array(before[5..<10]))
    }

    /// Training converges: each token must output the mean of the values it may attend to (including
    /// itself), which needs attention and the mask. With Adam at 3e-3, 400 steps of 64 examples, the
    /// loss must fall at least 20-fold.
    func testRegressionConverges() {
        var config = tinyConfig()
        config.keySize = 4; config.heads = 2; config.idDim = 4; config.valueDim = 4; config.condDim = 2
        let model = Transformer(config: config)
        let params = model.initialParameters(key: RandomKey(seed: 5))
        let grads = Arena(layout: model.layout)
        let adam = AdamOptimizer(layout: model.layout)
        let (b, t) = (64, 5)
        let batch = TokenBatch(capacity: b, tokens: t, usesMask: true)
        let runner = BatchParallel(model: model, capacity: b, tokens: t, training: true)
        var rng = RandomStream(seed: 6)
        func fill() -> [Float] {
            var target = [Float](repeating: 0, count: b * t)
            for e in 0..<b {
                batch.counts[e] = Int32(3 + rng.int(below: 3))
                batch.diffusionTime[e] = Float(rng.uniform())
                for i in 0..<t {
                    let r = e * t + i
                    batch.ids[r] = Int32(i % 4); batch.values[r] = Float(rng.normal())
                    for j in 0..<t { batch.allowedStorage[r * t + j] = (j <= i) ? 1 : 0 }  // causal
                }
                for i in 0..<Int(batch.counts[e]) {
                    var s: Float = 0
                    for j in 0...i { s += batch.values[e * t + j] }
                    target[e * t + i] = s / Float(i + 1)
                }
            }
            return target
        }
        func lossAndGrad(_ target: [Float]) -> Double {
            var n = 0
            for e in 0..<b { n += Int(batch.counts[e]) }
            return runner.forwardBackward(params, grads, batch.view) { start, count, out, dout in
                var loss = 0.0
                for e in 0..<count { for i in 0..<t {
                    let r = e * t + i
                    if i < Int(batch.counts[start + e]) {
                        let d = out[r] - target[start * t + r]
                        loss += Double(d * d) / Double(n)
                        dout[r] = 2 * d / Float(n)
                    } else { dout[r] = 0 }
                } }
                return loss
            }
        }
        var first = 0.0, last = 0.0
        let steps = 400
        for step in 0..<steps {
            let target = fill()
            grads.zero()
            let loss = lossAndGrad(target)
            if step < 10 { first += loss / 10 }
            if step >= steps - 10 { last += loss / 10 }
            adam.update(params, grads, learningRate: 3e-3)
        }
        XCTAssert(last < first / 20, "loss fell from \(first) to \(last), less than 20-fold")
    }
}
