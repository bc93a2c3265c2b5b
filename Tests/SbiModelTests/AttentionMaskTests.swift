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

    // MARK: directed (faithful inversion)

    /// Small DAGs as parent lists: a chain, a collider, a fork, two_moons' shape (theta -> x, x_1 <- x_0),
    /// a tree, and a diamond with a tail.
    let dags: [(String, [[Int]])] = [
        ("chain", [[], [0], [1], [2]]),
        ("collider", [[], [], [0, 1], [2]]),
        ("fork", [[], [0], [0], [1, 2]]),
        ("two_moons", [[], [], [0, 1], [0, 1, 2]]),
        ("tree", [[], [0], [0], [1], [1], [2]]),
        ("diamond", [[], [0], [0], [1, 2], [3], [0]]),
    ]

    func parentMatrix(_ parents: [[Int]]) -> [Bool] {
        let t = parents.count
        var m = [Bool](repeating: false, count: t * t)
        for (i, ps) in parents.enumerated() { for j in ps { m[i * t + j] = true } }
        return m
    }

    /// Whether x and y are d-separated given z in the DAG (parents lists): separated in the moral
    /// graph of the ancestral set of {x, y} and z, once z is removed.
    func dSeparated(_ parents: [[Int]], _ x: Int, _ y: Int, given z: Set<Int>) -> Bool {
        var ancestral = Set([x, y]).union(z), stack = Array(ancestral)
        while let v = stack.popLast() { for p in parents[v] where !ancestral.contains(p) { ancestral.insert(p); stack.append(p) } }
        var edges: [Int: Set<Int>] = [:]
        func link(_ a: Int, _ b: Int) { edges[a, default: []].insert(b); edges[b, default: []].insert(a) }
        for v in ancestral {
            for p in parents[v] { link(v, p) }
            for a in parents[v] { for b in parents[v] where a != b { link(a, b) } }
        }
        var seen: Set<Int> = [x], frontier = [x]
        while let v = frontier.popLast() {
            if v == y { return false }
            for w in edges[v] ?? [] where !seen.contains(w) && !z.contains(w) { seen.insert(w); frontier.append(w) }
        }
        return true
    }

    /// For every DAG and every condition mask: the inverse (each latent token's parents = the tokens it
    /// attends to; observed tokens as roots) is acyclic over the latent tokens and an I-map of the
    /// conditional: each d-separation it shows between two latent tokens, given the observed ones and
    /// any set of other latent tokens, holds in the original DAG. Observed rows are their DAG rows;
    /// with nothing observed the mask is the DAG. And it is sparser than dense somewhere.
    func testDirectedMaskIsAFaithfulInversion() {
        var sparserSomewhere = 0
        for (name, parents) in dags {
            let t = parents.count
            for bits in 0..<(1 << t) {
                let observed = (0..<t).map { bits & (1 << $0) != 0 }
                let mask = FaithfulInversion(parents: parentMatrix(parents), observed: observed).mask()
                let what = "\(name), observed \((0..<t).filter { observed[$0] })"
                for i in 0..<t { XCTAssertEqual(mask[i * t + i], 1, what) }
                for i in 0..<t where observed[i] || bits == 0 {
                    for j in 0..<t where j != i { XCTAssertEqual(mask[i * t + j] != 0, parents[i].contains(j), "\(what): row \(i)") }
                }
                let latent = (0..<t).filter { !observed[$0] }
                let inverse = (0..<t).map { i in observed[i] ? [] : (0..<t).filter { $0 != i && mask[i * t + $0] != 0 } }
                XCTAssertTrue(isAcyclic(inverse), "\(what): inverse has a cycle")
                let obs = Set((0..<t).filter { observed[$0] })
                for a in latent { for b in latent where a < b {
                    let others = latent.filter { $0 != a && $0 != b }
                    for zb in 0..<(1 << others.count) {
                        let z = Set(others.indices.filter { zb & (1 << $0) != 0 }.map { others[$0] }).union(obs)
                        if dSeparated(inverse, a, b, given: z) {
                            XCTAssertTrue(dSeparated(parents, a, b, given: z), "\(what): \(a) _|_ \(b) | \(z.sorted()) in the inverse only")
                        }
                    }
                } }
                if mask.contains(0) && bits != 0 { sparserSomewhere += 1 }
            }
        }
        XCTAssertGreaterThan(sparserSomewhere, 50, "the inversion keeps independences, not just a dense mask")
    }

    /// Two series that drive each other give tokens at the same time that are each other's parent: no
    /// latent token is then free of latent children, and the inversion still eliminates every one
    /// (the parameter p attends the observation o through them instead of keeping its DAG row).
    func testDirectedMaskWithACycleEliminatesEveryLatentToken() {
        // p -> a, p -> b, a <-> b, a -> o, b -> o; o observed
        let parents: [[Int]] = [[], [0, 2], [0, 1], [1, 2]]
        let f = FaithfulInversion(parents: parentMatrix(parents), observed: [false, false, false, true])
        XCTAssertEqual(Set(f.eliminationRows().map(\.0)), [0, 1, 2])
        XCTAssertTrue(f.eliminationRows().allSatisfy { $0.1[3] || $0.0 == 0 } && f.mask()[0 * 4 + 3] + f.mask()[0 * 4 + 1] + f.mask()[0 * 4 + 2] > 0,
                      "p attends something beyond itself: \(f.mask())")
    }

    func isAcyclic(_ parents: [[Int]]) -> Bool {
        var state = [Int](repeating: 0, count: parents.count)  // 0 new, 1 on the path, 2 done
        func visit(_ v: Int) -> Bool {
            if state[v] == 1 { return false }
            if state[v] == 2 { return true }
            state[v] = 1
            for p in parents[v] where !visit(p) { return false }
            state[v] = 2
            return true
        }
        return parents.indices.allSatisfy(visit)
    }

    /// Known inversions: the chain a -> b -> c -> d given d is eliminated from c (the latent token
    /// without latent children) upwards: p(a | d) p(b | a, d) p(c | b, d), so a attends d, b attends
    /// a and d, c attends b and d, and d keeps its DAG row; two_moons' posterior
    /// (x observed) lets theta_1 attend theta_0 but not the reverse, both attend x.
    func testDirectedMaskExamples() {
        let chain = FaithfulInversion(parents: parentMatrix(dags[0].1), observed: [false, false, false, true]).mask()
        XCTAssertEqual(chain, [1, 0, 0, 1,
                               1, 1, 0, 1,
                               0, 1, 1, 1,
                               0, 0, 1, 1])
        let moons = FaithfulInversion(parents: parentMatrix(dags[3].1), observed: [false, false, true, true]).mask()
        let rows = (0..<2).map { i in Array(moons[(i * 4)..<(i * 4 + 4)]) }
        XCTAssertEqual(rows[0].filter { $0 != 0 }.count + rows[1].filter { $0 != 0 }.count, 7, "one of theta_0, theta_1 attends the other: \(rows)")
        XCTAssertEqual(Array(rows[0][2...]) + Array(rows[1][2...]), [1, 1, 1, 1], "both attend x")
        // through the spec: SLCP's tokens with x observed attend only what the inversion allows
        let slcp = SLCPTask().spec
        let observed = (0..<13).map { $0 >= 5 }
        let m = AttentionMasks(spec: slcp).mask(for: slcp.fixedLayout, kind: .directed, observed: observed)
        for i in 5..<13 { for j in 0..<13 where j != i {
            XCTAssertEqual(m[i * 13 + j] != 0, AttentionMasks(spec: slcp).parentMatrix(for: slcp.fixedLayout)[i * 13 + j], "observed x row \(i)")
        } }
        XCTAssertEqual(AttentionMasks(spec: slcp).mask(for: slcp.fixedLayout, kind: .directed),
                       AttentionMasks(spec: slcp).parentMatrix(for: slcp.fixedLayout).enumerated().map { $0.element || $0.offset % 14 == 0 ? 1 : 0 },
                       "nothing observed: the DAG")
    }
}
