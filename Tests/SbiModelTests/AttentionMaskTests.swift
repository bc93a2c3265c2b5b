import XCTest
@testable import SbiModel
@testable import SbiTasks

final class AttentionMaskTests: XCTestCase {
    func allowed(_ m: [UInt8], _ t: Int, _ i: Int, _ j: Int) -> Bool { m[i * t + j] != 0 }

    /// gaussian_linear: theta_i - x_i only. slcp: all theta connected (co-parents), x pairs chained.
    func testBenchmarkMasksAreTheMoralisedGraphs() {
        let gl = GaussianLinearTask().spec
        let m = gl.attentionMask(.undirected)
        for i in 0..<20 { for j in 0..<20 {
            let expected = i == j || abs(i - j) == 10
            XCTAssertEqual(allowed(m, 20, i, j), expected, "gaussian_linear \(i) \(j)")
        } }
        let slcp = SLCPTask().spec
        let s = slcp.attentionMask(.undirected)
        for i in 0..<5 { for j in 0..<5 { XCTAssert(allowed(s, 13, i, j)) } }           // co-parents of every x
        for i in 0..<5 { for j in 5..<13 { XCTAssert(allowed(s, 13, i, j) && allowed(s, 13, j, i)) } }
        XCTAssert(allowed(s, 13, 5, 6))    // x_1[0] -> x_1[1]
        XCTAssertFalse(allowed(s, 13, 5, 7))  // different draws are independent given theta
        XCTAssertEqual(Set(slcp.attentionMask(.dense)), [1])
    }

    /// p -> s (a series), s -> r (forward in time): chains within series, p attends every series token,
    /// r(t) attends s(t') for t' <= t only.
    func testTimeSeriesMask() {
        let axis = TimeAxis(lower: 0, upper: 10, grid: 11, maxPoints: 5)
        var spec = ModelSpec(variables: [VariableSpec(name: "p", kind: .parameter, size: 1),
                                         VariableSpec(name: "s", kind: .data, time: axis),
                                         VariableSpec(name: "r", kind: .data, time: axis)], edges: [])
        spec.edges = [.init(0, 1), .init(1, 2)]
        let tokens = [TokenRef(node: 0), TokenRef(node: 1, time: 5), TokenRef(node: 1, time: 1), TokenRef(node: 1, time: 9),
                      TokenRef(node: 2, time: 4), TokenRef(node: 2, time: 8)]
        let m = AttentionMasks(spec: spec).mask(for: tokens, kind: .undirected)
        let t = tokens.count
        for j in 1...3 { XCTAssert(allowed(m, t, 0, j)) }       // parameter - its series
        XCTAssertFalse(allowed(m, t, 0, 4))                      // no edge p -> r
        XCTAssert(allowed(m, t, 1, 2) && allowed(m, t, 1, 3))  // chain 1 - 5 - 9
        XCTAssertFalse(allowed(m, t, 2, 3))                      // 1 and 9 are not neighbours
        XCTAssert(allowed(m, t, 4, 2))                           // r(4) <- s(1)
        XCTAssertFalse(allowed(m, t, 4, 1))                      // r(4) cannot see s(5)
        XCTAssert(allowed(m, t, 5, 1) && allowed(m, t, 5, 2))  // r(8) <- s(5), s(1)
        XCTAssertFalse(allowed(m, t, 5, 3))                      // not s(9)
        XCTAssert(allowed(m, t, 4, 5))                           // r chain
        for i in 0..<t { for j in 0..<t { XCTAssertEqual(m[i * t + j], m[j * t + i]) } }  // symmetric
    }
}
