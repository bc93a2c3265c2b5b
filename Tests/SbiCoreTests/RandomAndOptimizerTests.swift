import XCTest
@testable import SbiCore

final class RandomTests: XCTestCase {
    func testSameSeedSameBits() {
        var a = RandomStream(seed: 42), b = RandomStream(seed: 42)
        for _ in 0..<1000 { XCTAssertEqual(a.normal().bitPattern, b.normal().bitPattern) }
        var c = RandomStream(seed: 43)
        var d = RandomStream(seed: 42)
        XCTAssertNotEqual(c.nextUInt64(), d.nextUInt64())
    }

    /// Philox4x32-10 known-answer vector (Random123 kat_vectors: counter and key all zero).
    func testPhiloxKnownAnswer() {
        let out = Philox.block(key: 0, counterHigh: 0, counterLow: 0)
        XCTAssertEqual([out.0, out.1, out.2, out.3], [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
    }

    func testSplitKeysAreDistinctAndStable() {
        let k = RandomKey(seed: 7)
        XCTAssertEqual(k.split(3), k.split(3))
        let children = Set((0..<1000).map { k.split(UInt64($0)).raw })
        XCTAssertEqual(children.count, 1000)
        XCTAssertNotEqual(k.split(0).raw, k.raw)
    }

    /// 200,000 normals: mean within 0.01 of 0, variance within 0.02 of 1; uniforms in [0, 1) with mean 1/2.
    func testMoments() {
        var r = RandomStream(seed: 9)
        let n = 200_000
        var s = 0.0, s2 = 0.0, u = 0.0
        for _ in 0..<n {
            let x = r.normal(); s += x; s2 += x * x
            let v = r.uniform(); XCTAssert(v >= 0 && v < 1); u += v
        }
        XCTAssertEqual(s / Double(n), 0, accuracy: 0.01)
        XCTAssertEqual(s2 / Double(n), 1, accuracy: 0.02)
        XCTAssertEqual(u / Double(n), 0.5, accuracy: 0.005)
        var counts = [0, 0, 0]
        for _ in 0..<30_000 { counts[r.int(below: 3)] += 1 }
        for c in counts { XCTAssertEqual(Double(c), 10_000, accuracy: 400) }
    }
}

final class OptimizerTests: XCTestCase {
    func testScheduleConstantThenLinear() {
        let s = LearningRateSchedule(peak: 1e-3, final: 1e-6, totalSteps: 100)
        XCTAssertEqual(s.rate(at: 0), 1e-3)
        XCTAssertEqual(s.rate(at: 49), 1e-3)
        XCTAssertEqual(s.rate(at: 75), (1e-3 + 1e-6) / 2, accuracy: 1e-9)
        XCTAssertEqual(s.rate(at: 100), 1e-6, accuracy: 1e-9)
    }

    /// First Adam step moves each parameter by lr * sign(g) (bias-corrected moments);
    /// frozen tensors never move.
    func testAdamFirstStepAndFrozen() {
        var layout = ParameterLayout()
        let w = layout.add("w", shape: [3])
        let f = layout.add("f", shape: [2], frozen: true)
        let p = Arena(layout: layout), g = Arena(layout: layout)
        p.pointer(w).update(from: [1, -2, 3], count: 3)
        p.pointer(f).update(from: [5, 6], count: 2)
        g.pointer(w).update(from: [0.5, -0.1, 2], count: 3)
        g.pointer(f).update(from: [1, 1], count: 2)
        let adam = AdamOptimizer(layout: layout)
        adam.update(p, g, learningRate: 0.01)
        XCTAssertEqual(p.values(w)[0], 0.99, accuracy: 1e-6)
        XCTAssertEqual(p.values(w)[1], -1.99, accuracy: 1e-6)
        XCTAssertEqual(p.values(w)[2], 2.99, accuracy: 1e-6)
        XCTAssertEqual(p.values(f), [5, 6])
    }

    /// Adaptive clipping caps each column's gradient norm at 10 x its parameter norm (x (3,2) matrix).
    func testAdaptiveClipping() {
        var layout = ParameterLayout()
        let w = layout.add("w", shape: [3, 2])
        let p = Arena(layout: layout), g = Arena(layout: layout)
        p.pointer(w).update(from: [0.1, 1, 0, 1, 0, 1], count: 6)   // column norms 0.1 and sqrt(3)
        g.pointer(w).update(from: [3, 1, 4, 1, 0, 1], count: 6)     // column norms 5 and sqrt(3)
        let adam = AdamOptimizer(layout: layout)
        adam.update(p, g, learningRate: 0)
        let clipped = g.values(w)
        XCTAssertEqual(clipped[0], 3 * 1 / 5, accuracy: 1e-6)   // 5 > 10 * 0.1: scaled to norm 1
        XCTAssertEqual(clipped[2], 4 * 1 / 5, accuracy: 1e-6)
        XCTAssertEqual(clipped[1], 1)                          // sqrt(3) < 10 sqrt(3): untouched
    }
}
