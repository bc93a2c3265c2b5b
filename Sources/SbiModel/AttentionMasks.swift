// Attention masks from the dependency graph, for any set of tokens (METHOD.md, "Network").

/// Builds allowed (T,T) masks for token layouts of one model.
/// Directed graph over tokens, M[i][j] = 1 if token j is a parent of token i:
/// - node edges parent -> child between fixed nodes;
/// - a fixed node and a time-indexed variable joined by a node edge: every token of the series;
/// - within a time-indexed variable, a chain: each token's parent is the previous token in time;
/// - between time-indexed variables joined by a node edge, forward in time: parent token time <= child token time.
/// The undirected mask is M | M^T plus the moral edges between fixed nodes that share a child node
/// (for models without time-indexed variables this is exactly the moralised graph M | M^T | M^T M).
public struct AttentionMasks: Sendable {
    public let spec: ModelSpec
    let isTimeNode: [Bool]
    /// parentEdge[child * n + parent]
    let parentEdge: [Bool]
    /// moral[i * n + j]: fixed nodes i and j are parents of a common child node
    let moral: [Bool]

    public init(spec: ModelSpec) {
        self.spec = spec
        let n = spec.nodeCount
        let varOf = spec.variableOfNode
        let timeNode = (0..<n).map { spec.variables[varOf[$0]].time != nil }
        isTimeNode = timeNode
        var pe = [Bool](repeating: false, count: n * n)
        for e in spec.edges { pe[e.child * n + e.parent] = true }
        parentEdge = pe
        var m = [Bool](repeating: false, count: n * n)
        for c in 0..<n {
            let parents = (0..<n).filter { pe[c * n + $0] && !timeNode[$0] }
            for a in parents { for b in parents { m[a * n + b] = true } }
        }
        moral = m
    }

    /// Whether token j is a parent of token i; `previous[i]` is the previous token of i's series in time.
    @inline(__always)
    func isParent(_ i: Int, _ j: Int, _ tokens: [TokenRef], _ previous: [Int]) -> Bool {
        let a = tokens[i], b = tokens[j], n = spec.nodeCount
        if a.node == b.node { return isTimeNode[a.node] && previous[i] == j }
        guard parentEdge[a.node * n + b.node] else { return false }
        if isTimeNode[a.node] && isTimeNode[b.node] { return (b.time ?? 0) <= (a.time ?? 0) }
        return true
    }

    /// allowed (T,T) row-major, allowed[i*T+j] = 1 if token i may attend token j; T = tokens.count.
    public func mask(for tokens: [TokenRef], kind: AttentionMaskKind) -> [UInt8] {
        let t = tokens.count
        if kind == .dense { return [UInt8](repeating: 1, count: t * t) }
        // previous token in time within each series
        var previous = [Int](repeating: -1, count: t)
        var byNode: [Int: [Int]] = [:]
        for (i, tok) in tokens.enumerated() where isTimeNode[tok.node] { byNode[tok.node, default: []].append(i) }
        for (_, idx) in byNode {
            let sorted = idx.sorted { (tokens[$0].time ?? 0, $0) < (tokens[$1].time ?? 0, $1) }
            for k in 1..<max(sorted.count, 1) where k < sorted.count { previous[sorted[k]] = sorted[k - 1] }
        }
        let n = spec.nodeCount
        var a = [UInt8](repeating: 0, count: t * t)
        for i in 0..<t {
            a[i * t + i] = 1
            for j in 0..<i {
                var ok = isParent(i, j, tokens, previous) || isParent(j, i, tokens, previous)
                if !ok && !isTimeNode[tokens[i].node] && !isTimeNode[tokens[j].node] {
                    ok = moral[tokens[i].node * n + tokens[j].node]
                }
                if ok { a[i * t + j] = 1; a[j * t + i] = 1 }
            }
        }
        return a
    }
}
