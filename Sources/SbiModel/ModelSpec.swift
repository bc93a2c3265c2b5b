// What a model is about: its variables, their scalar nodes, and the dependency graph.

/// Whether a variable is inferred (parameter) or observed (data) in the usual posterior query.
public enum VariableKind: String, Codable, Sendable { case parameter, data }

/// One named variable: a vector of `size` scalars (one token each).
public struct VariableSpec: Codable, Hashable, Sendable {
    public var name: String
    public var kind: VariableKind
    public var size: Int
    public var units: String?

    public init(name: String, kind: VariableKind, size: Int, units: String? = nil) {
        self.name = name; self.kind = kind; self.size = size; self.units = units
    }
}

/// How attention is restricted (METHOD.md, "Network").
public enum AttentionMaskKind: String, Codable, CaseIterable, Sendable {
    /// every token attends to every token
    case dense
    /// the moralised dependency graph, M | M^T | M^T M, plus the diagonal
    case undirected
}

/// The variables of a model and the directed dependency graph between their scalar nodes.
/// Nodes are numbered variable by variable, element by element; node i has identifier i.
public struct ModelSpec: Codable, Hashable, Sendable {
    public var variables: [VariableSpec]
    /// Directed edges (parent node, child node).
    public var edges: [Edge]

    public struct Edge: Codable, Hashable, Sendable {
        public var parent: Int
        public var child: Int
        public init(_ parent: Int, _ child: Int) { self.parent = parent; self.child = child }
    }

    public init(variables: [VariableSpec], edges: [Edge]) {
        self.variables = variables; self.edges = edges
    }

    public var nodeCount: Int { variables.reduce(0) { $0 + $1.size } }

    /// First node of each variable.
    public var offsets: [Int] {
        var o: [Int] = [], n = 0
        for v in variables { o.append(n); n += v.size }
        return o
    }

    public func variableIndex(named name: String) -> Int? { variables.firstIndex { $0.name == name } }

    /// Node range of a variable.
    public func nodes(of variable: Int) -> Range<Int> {
        let o = offsets[variable]
        return o..<(o + variables[variable].size)
    }

    /// All nodes of variables of one kind.
    public func nodes(kind: VariableKind) -> [Int] {
        variables.indices.filter { variables[$0].kind == kind }.flatMap { Array(nodes(of: $0)) }
    }

    /// Column label of a node, e.g. "theta[3]".
    public func label(ofNode node: Int) -> String {
        var n = node
        for v in variables {
            if n < v.size { return "\(v.name)[\(n)]" }
            n -= v.size
        }
        return "node[\(node)]"
    }

    /// Every child depends on every parent: edges parentVariable[i] -> childVariable[j] for all i, j.
    public func fullyConnected(from parent: String, to child: String) -> [Edge] {
        guard let p = variableIndex(named: parent), let c = variableIndex(named: child) else { return [] }
        return nodes(of: p).flatMap { i in nodes(of: c).map { Edge(i, $0) } }
    }

    /// allowed (T,T) row-major: allowed[i*T+j] = 1 if node i may attend node j.
    public func attentionMask(_ kind: AttentionMaskKind) -> [UInt8] {
        let t = nodeCount
        switch kind {
        case .dense:
            return [UInt8](repeating: 1, count: t * t)
        case .undirected:
            // M[i][j] = 1 if j is a parent of i (plus the diagonal)
            var m = [[Bool]](repeating: [Bool](repeating: false, count: t), count: t)
            for i in 0..<t { m[i][i] = true }
            for e in edges { m[e.child][e.parent] = true }
            var a = [UInt8](repeating: 0, count: t * t)
            for i in 0..<t {
                for j in 0..<t {
                    var allowed = m[i][j] || m[j][i]
                    if !allowed {  // (M^T M)[i][j]: i and j are parents of a common child
                        for k in 0..<t where m[k][i] && m[k][j] { allowed = true; break }
                    }
                    a[i * t + j] = allowed ? 1 : 0
                }
            }
            return a
        }
    }
}

extension ModelSpec {
    /// Nodes named by "NAME" (the whole variable) or "NAME[i]" (one element).
    public func nodes(matching selector: String) throws -> [Int] {
        var name = selector, index: Int? = nil
        if selector.hasSuffix("]"), let open = selector.firstIndex(of: "[") {
            name = String(selector[..<open])
            let inner = selector[selector.index(after: open)..<selector.index(before: selector.endIndex)]
            guard let i = Int(inner) else {
                throw SbiError(.usage, "'\(selector)': the index in brackets must be an integer, e.g. \(name)[0]")
            }
            index = i
        }
        guard let v = variableIndex(named: name) else {
            throw SbiError(.usage, "the model has no variable '\(name)'",
                           hint: "its variables are: \(variables.map(\.name).joined(separator: ", "))")
        }
        let range = nodes(of: v)
        guard let index else { return Array(range) }
        guard index >= 0 && index < variables[v].size else {
            throw SbiError(.usage, "'\(selector)' is out of range: \(name) has elements 0...\(variables[v].size - 1)")
        }
        return [range.lowerBound + index]
    }
}

import SbiCore
