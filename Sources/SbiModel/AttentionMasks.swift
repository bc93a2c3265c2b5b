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
    /// `observed` (T) is the condition mask; only the directed mask reads it (nil: nothing observed).
    public func mask(for tokens: [TokenRef], kind: AttentionMaskKind, observed: [Bool]? = nil) -> [UInt8] {
        let t = tokens.count
        switch kind {
        case .dense: return [UInt8](repeating: 1, count: t * t)
        case .undirected: return undirectedMask(for: tokens)
        case .directed:
            return FaithfulInversion(parents: parentMatrix(for: tokens), observed: observed ?? [Bool](repeating: false, count: t)).mask()
        }
    }

    /// parents (T,T): parents[i*T+j] = token j is a parent of token i in the token graph.
    public func parentMatrix(for tokens: [TokenRef]) -> [Bool] {
        let t = tokens.count, previous = previousInTime(tokens)
        var p = [Bool](repeating: false, count: t * t)
        for i in 0..<t { for j in 0..<t where i != j && isParent(i, j, tokens, previous) { p[i * t + j] = true } }
        return p
    }

    /// previous[i]: the previous token of i's series in time (-1 for the first and for fixed nodes).
    func previousInTime(_ tokens: [TokenRef]) -> [Int] {
        var previous = [Int](repeating: -1, count: tokens.count)
        var byNode: [Int: [Int]] = [:]
        for (i, tok) in tokens.enumerated() where isTimeNode[tok.node] { byNode[tok.node, default: []].append(i) }
        for (_, idx) in byNode {
            let sorted = idx.sorted { (tokens[$0].time ?? 0, $0) < (tokens[$1].time ?? 0, $1) }
            for k in 1..<max(sorted.count, 1) where k < sorted.count { previous[sorted[k]] = sorted[k - 1] }
        }
        return previous
    }

    /// The moralised graph over the tokens, plus the diagonal.
    func undirectedMask(for tokens: [TokenRef]) -> [UInt8] {
        let t = tokens.count
        let previous = previousInTime(tokens)
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

/// A minimal faithful inversion (Webb et al. 2018) of a DAG given a condition mask, as the directed
/// attention mask: the latent tokens are eliminated one at a time from the moralised graph, each
/// when none of its latent children is left (children first, so a child attends to its parents),
/// choosing the one whose elimination adds the fewest fill-in edges (ties: the lowest index); the
/// eliminated token attends to its remaining neighbours (latent tokens eliminated later and observed
/// tokens), which then become a clique. The result, read as "attends to" = "depends on", is a DAG
/// over the latent tokens that is an I-map of p(latent | observed): every d-separation it shows
/// holds in the original graph given the observations. Observed tokens attend to their parents
/// (their rows of the DAG); with nothing observed the mask is the DAG itself. The diagonal is set.
public struct FaithfulInversion {
    /// parents (T,T): parents[i*T+j] = j is a parent of i.
    public let parents: [Bool]
    public let observed: [Bool]
    var t: Int { observed.count }

    public init(parents: [Bool], observed: [Bool]) {
        precondition(parents.count == observed.count * observed.count, "parents must be T x T")
        self.parents = parents; self.observed = observed
    }

    /// allowed (T,T) row-major: allowed[i*T+j] = 1 if token i attends token j.
    public func mask() -> [UInt8] {
        let t = self.t
        var out = parents.map { $0 ? UInt8(1) : 0 }
        for i in 0..<t { out[i * t + i] = 1 }
        guard observed.contains(true) else { return out }
        for (v, attends) in eliminationRows() {
            for j in 0..<t { out[v * t + j] = attends[j] ? 1 : 0 }
            out[v * t + v] = 1
        }
        return out
    }

    /// Each latent token with the tokens it attends to, in elimination order.
    public func eliminationRows() -> [(Int, [Bool])] {
        let t = self.t
        var graph = moralised()
        var eliminated = [Bool](repeating: false, count: t)
        var rows: [(Int, [Bool])] = []
        while let v = nextToEliminate(graph, eliminated) {
            let neighbours = (0..<t).map { $0 != v && graph[v * t + $0] && !eliminated[$0] }
            for a in 0..<t where neighbours[a] { for b in 0..<t where neighbours[b] && a != b { graph[a * t + b] = true } }
            rows.append((v, neighbours))
            eliminated[v] = true
        }
        return rows
    }

    /// The latent token to eliminate next: one whose latent children are all eliminated, with the
    /// fewest fill-in edges among its remaining neighbours. Where the token graph has a cycle (two
    /// series that drive each other, tokens at the same time) no token may qualify; then any remaining
    /// latent token does (any elimination order gives an I-map; this one is only less sparse).
    func nextToEliminate(_ graph: [Bool], _ eliminated: [Bool]) -> Int? {
        nextToEliminate(graph, eliminated, childrenFirst: true) ?? nextToEliminate(graph, eliminated, childrenFirst: false)
    }

    func nextToEliminate(_ graph: [Bool], _ eliminated: [Bool], childrenFirst: Bool) -> Int? {
        let t = self.t
        var best: (fill: Int, v: Int)?
        for v in 0..<t where !observed[v] && !eliminated[v] {
            let childrenLeft = childrenFirst && (0..<t).contains { c in c != v && parents[c * t + v] && !observed[c] && !eliminated[c] }
            if childrenLeft { continue }
            let nb = (0..<t).filter { $0 != v && graph[v * t + $0] && !eliminated[$0] }
            var fill = 0
            for (k, a) in nb.enumerated() { for b in nb[(k + 1)...] where !graph[a * t + b] { fill += 1 } }
            if best == nil || fill < best!.fill { best = (fill, v) }
        }
        return best?.v
    }

    /// The moral graph, symmetric: parent-child pairs and parents of a common child.
    func moralised() -> [Bool] {
        let t = self.t
        var g = [Bool](repeating: false, count: t * t)
        for c in 0..<t {
            let ps = (0..<t).filter { parents[c * t + $0] }
            for p in ps { g[c * t + p] = true; g[p * t + c] = true }
            for a in ps { for b in ps where a != b { g[a * t + b] = true } }
        }
        return g
    }
}
