import XCTest
@testable import SbiCore

final class VectorMathTests: XCTestCase {
    /// fastExp against Foundation's exp: relative error below 3e-7 over [-80, 80]; clamped outside.
    func testFastExpAccuracy() {
        var worst: Float = 0
        for i in 0...16000 {
            let x = -80 + Float(i) * 0.01
            let exact = Float(Foundation.exp(Double(x)))
            worst = max(worst, abs(fastExp(x) - exact) / exact)
        }
        XCTAssertLessThan(worst, 3e-7)
        XCTAssert(fastExp(-1000) > 0 && fastExp(-1000).isFinite)
        XCTAssert(fastExp(1000).isFinite)
    }
}

import Foundation

/// smallGemm against a plain triple loop, for every row remainder (m mod 4 = 0...3), column counts
/// that exercise the 16-, 32- and 8-wide blocks, transposed (strided) A, and accumulate.
final class SmallGemmTests: XCTestCase {
    func testMatchesTheNaiveProduct() {
        var rng = RandomStream(seed: 9)
        for m in 1...11 { for n in [8, 16, 24, 40, 72] { for k in [1, 3, 10] { for transposed in [false, true] { for accumulate in [false, true] {
            let a = (0..<(m * k)).map { _ in Float(rng.normal()) }, b = (0..<(k * n)).map { _ in Float(rng.normal()) }
            let c0 = (0..<(m * n)).map { _ in Float(rng.normal()) }
            var c = c0
            let (aRow, aCol) = transposed ? (1, m) : (k, 1)   // A[i,kk] = a[i * aRow + kk * aCol]
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                smallGemm(cp.baseAddress!, n, ap.baseAddress!, aRow, aCol, bp.baseAddress!, n, m, n, k, accumulate: accumulate)
            } } }
            for i in 0..<m { for j in 0..<n {
                var want: Float = accumulate ? c0[i * n + j] : 0
                for kk in 0..<k { want += a[i * aRow + kk * aCol] * b[kk * n + j] }
                XCTAssertEqual(c[i * n + j], want, accuracy: 1e-4 * max(1, abs(want)), "m \(m) n \(n) k \(k) (\(i), \(j))")
            } }
        } } } } }
    }
}

/// The vectorised context add and row sums give the plain loops' bits, for widths with and without an
/// 8-lane remainder (50 = the large network's, 13, 8, 3).
final class ContextKernelTests: XCTestCase {
    func testContextAddAndRowSumsMatchThePlainLoops() {
        var rng = RandomStream(seed: 21)
        for width in [50, 13, 8, 3] { for (batch, tokens) in [(1, 1), (3, 7), (5, 2)] {
            let rows = batch * tokens
            let out0 = (0..<(rows * width)).map { _ in Float(rng.normal()) }
            let mid = (0..<(rows * width)).map { _ in Float(rng.normal()) }
            let ctx = (0..<(batch * width)).map { _ in Float(rng.normal()) }
            var out = out0, want = out0
            for e in 0..<batch { for tk in 0..<tokens { for k in 0..<width {
                let r = (e * tokens + tk) * width + k
                want[r] += mid[r] + ctx[e * width + k]
            } } }
            out.withUnsafeMutableBufferPointer { o in
                addResidualAndContext(o.baseAddress!, mid, ctx, batch, tokens, width)
            }
            XCTAssertEqual(out.map(\.bitPattern), want.map(\.bitPattern), "context add, width \(width)")
            var sums = ctx, wantSums = ctx
            for e in 0..<batch { for tk in 0..<tokens { for k in 0..<width {
                wantSums[e * width + k] += mid[(e * tokens + tk) * width + k]
            } } }
            sums.withUnsafeMutableBufferPointer { s in addRowSumsPerExample(s.baseAddress!, mid, batch, tokens, width) }
            XCTAssertEqual(sums.map(\.bitPattern), wantSums.map(\.bitPattern), "row sums, width \(width)")
        } }
    }
}
