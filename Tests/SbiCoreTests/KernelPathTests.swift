import XCTest
@testable import SbiCore
import SbiKernelsAVX512

/// The 16-wide AVX-512 kernels give the same bits as the 8-wide AVX2 ones: the exponential, the
/// head products, attention forward and backward (masked and not, training and inference), and a
/// whole network's forward and backward. Skipped (saying so) on a CPU without AVX-512.
final class KernelPathTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(KernelPath.avx512Available, "this CPU has no AVX-512: only the AVX2 kernels can run")
    }

    /// Runs `body` once per kernel path and returns both results.
    func onBothPaths<T>(_ body: () -> T) -> (avx2: T, avx512: T) {
        let previous = KernelPath.current
        defer { KernelPath.current = previous }
        KernelPath.current = .avx2
        let a = body()
        KernelPath.current = .avx512
        return (a, body())
    }

    func testExponentialIsTheSameBits() {
        var rng = RandomStream(seed: 31)
        var x = (0..<4096).map { _ in Float(rng.uniform() * 220 - 110) }
        x += [0, -0, 1, -1, 88.3, 88.4, -87.3, -87.4, 1e-30, -1e-30, .greatestFiniteMagnitude, -.greatestFiniteMagnitude]
        while x.count % 16 != 8 { x.append(0.5) }   // 16-wide blocks and an 8-wide tail
        var wide = x
        wide.withUnsafeMutableBufferPointer { fastExpInPlace512($0.baseAddress!, $0.count) }
        for (i, v) in x.enumerated() {
            XCTAssertEqual(wide[i].bitPattern, fastExp(v).bitPattern, "e^\(v)")
        }
    }

    func testHeadProductIsTheSameBits() {
        var rng = RandomStream(seed: 32)
        for m in 1...9 { for n in [8, 16, 24, 40, 72, 184] { for k in [1, 3, 10, 37] { for transposed in [false, true] {
            for accumulate in [false, true] {
                let a = (0..<(m * k)).map { _ in Float(rng.normal()) }, b = (0..<(k * n)).map { _ in Float(rng.normal()) }
                let c0 = (0..<(m * n)).map { _ in Float(rng.normal()) }
                let (aRow, aCol) = transposed ? (1, m) : (k, 1)
                var narrow = c0, wide = c0
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                    narrow.withUnsafeMutableBufferPointer {
                        smallGemm($0.baseAddress!, n, ap.baseAddress!, aRow, aCol, bp.baseAddress!, n, m, n, k, accumulate: accumulate)
                    }
                    wide.withUnsafeMutableBufferPointer {
                        smallGemm512($0.baseAddress!, n, ap.baseAddress!, aRow, aCol, bp.baseAddress!, n, m, n, k, accumulate: accumulate)
                    }
                } }
                XCTAssertEqual(narrow.map(\.bitPattern), wide.map(\.bitPattern), "m \(m) n \(n) k \(k) transposed \(transposed)")
            }
        } } } }
    }

    /// 1,003 values: 62 blocks of 16 and a scalar tail of 11.
    func testGeluIsTheSameBits() {
        let n = 1003
        let x = randomBuffer(n, seed: 38, std: 3), dout = randomBuffer(n, seed: 39), start = randomBuffer(n, seed: 40)
        for overwrite in [false, true] {
            let runs = onBothPaths { () -> [[Float]] in
                let out = FloatBuffer(n), dinp = FloatBuffer(n)
                dinp.base.update(from: start.base, count: n)
                geluForward(out.base, x.base, n)
                geluBackward(dinp.base, x.base, dout.base, n, overwrite: overwrite)
                return [out.array, dinp.array]
            }
            XCTAssertEqual(runs.avx2[0].map(\.bitPattern), runs.avx512[0].map(\.bitPattern), "forward")
            XCTAssertEqual(runs.avx2[1].map(\.bitPattern), runs.avx512[1].map(\.bitPattern), "backward, overwrite \(overwrite)")
            XCTAssertNotEqual(runs.avx512[1], start.array)
        }
    }

    /// 37 tokens pad to 40 queries: two 16-wide column blocks and an 8-wide one.
    func testAttentionIsTheSameBits() {
        let shape = AttentionShape(batch: 3, tokens: 37, heads: 2, keySize: 10)
        let (b, t) = (shape.batch, shape.tokens)
        let qkv = randomBuffer(b * t * shape.qkvStride, seed: 33, std: 2)
        let dout = randomBuffer(b * t * shape.outStride, seed: 34)
        let counts = UnsafeMutablePointer<Int32>.allocate(capacity: b)
        defer { counts.deallocate() }
        counts[0] = 37; counts[1] = 20; counts[2] = 9
        let allowed = UnsafeMutablePointer<UInt8>.allocate(capacity: b * t * t)
        defer { allowed.deallocate() }
        var rng = RandomStream(seed: 35)
        for i in 0..<(b * t * t) { allowed[i] = rng.uniform() < 0.6 ? 1 : 0 }
        let keep = FloatBuffer(b * t * shape.paddedTokens)
        buildKeepMask(keep.base, allowed, counts, shape)
        for masked in [true, false] { for training in [true, false] {
            let runs = onBothPaths { () -> [[Float]] in
                let scratch = AttentionScratch(tokens: t, keySize: shape.keySize)
                let out = FloatBuffer(b * t * shape.outStride)
                let att = FloatBuffer((training ? b * shape.heads : 1) * t * shape.paddedTokens)
                attentionForward(out.base, att.base, qkv.base, masked ? UnsafePointer(keep.base) : nil, counts, shape, scratch,
                                 keepProbabilities: training)
                guard training else { return [out.array] }
                let dqkv = FloatBuffer(qkv.count)
                attentionBackward(dqkv.base, dout.base, qkv.base, att.base, counts, shape, scratch)
                return [out.array, att.array, dqkv.array]
            }
            XCTAssert(runs.avx2[0].contains { $0 != 0 })
            for (name, (x, y)) in zip(["outputs", "probabilities", "dqkv"], zip(runs.avx2, runs.avx512)) {
                XCTAssertEqual(x.map(\.bitPattern), y.map(\.bitPattern), "\(name), masked \(masked), training \(training)")
            }
        } }
    }

    /// A small network's forward and backward over a padded batch, every gradient compared.
    func testNetworkIsTheSameBits() {
        let config = TransformerConfig.preset(.small, identifiers: 4, timeIndexed: true)
        let model = Transformer(config: config)
        let params = model.initialParameters(key: RandomKey(seed: 36))
        let (batch, tokens) = (6, 23)
        let input = TokenBatch(capacity: batch, tokens: tokens)
        var rng = RandomStream(seed: 37)
        for i in 0..<(batch * tokens) {
            input.ids[i] = Int32(i % 4); input.values[i] = Float(rng.normal())
            input.observed[i] = rng.uniform() < 0.5 ? 1 : 0
            input.times[i] = Float(rng.uniform()); input.hasTime[i] = 1
        }
        for e in 0..<batch { input.diffusionTime[e] = Float(rng.uniform()); input.counts[e] = Int32(tokens - 2 * e) }
        let runs = onBothPaths { () -> [[Float]] in
            let runner = BatchParallel(model: model, capacity: batch, tokens: tokens, training: true, threads: 1)
            let grads = Arena(layout: model.layout)
            _ = runner.forwardBackward(params, grads, input.view) { _, count, out, dout in
                for i in 0..<(count * tokens) { dout[i] = 1e-2 * out[i] }
                return 0
            }
            return [Array(UnsafeBufferPointer(start: runner.output.base, count: batch * tokens)), Array(UnsafeBufferPointer(start: grads.base, count: grads.count))]
        }
        XCTAssertEqual(runs.avx2[0].map(\.bitPattern), runs.avx512[0].map(\.bitPattern), "outputs")
        XCTAssertEqual(runs.avx2[1].map(\.bitPattern), runs.avx512[1].map(\.bitPattern), "gradients")
        XCTAssert(runs.avx2[1].contains { $0 != 0 })
    }
}
