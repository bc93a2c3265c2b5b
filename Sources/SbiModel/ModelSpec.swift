// What a model is about: its variables, their scalar nodes, and the dependency graph.
import Foundation
import SbiCore

/// Whether a variable is inferred (parameter) or observed (data) in the usual posterior query.
public enum VariableKind: String, Codable, Sendable { case parameter, data }

/// The time domain of a time-indexed variable (a time series, or a function-valued parameter).
public struct TimeAxis: Codable, Hashable, Sendable {
    public var lower: Double
    public var upper: Double
    /// Points of the dense simulation grid, evenly spaced on [lower, upper].
    public var grid: Int
    /// Observed times per series that files usually come with (the calibration pass and synthetic
    /// files observe at most this many, even where the model answers denser grids).
    public static let filePoints = 20
    /// Most tokens of this variable in one training example: the densest grid answered directly.
    public var maxPoints: Int
    /// Unit of time, e.g. "days".
    public var units: String?

    public init(lower: Double, upper: Double, grid: Int, maxPoints: Int, units: String? = nil) {
        self.lower = lower; self.upper = upper; self.grid = grid; self.maxPoints = maxPoints; self.units = units
    }

    /// Time of dense grid point k.
    public func gridTime(_ k: Int) -> Double { lower + (upper - lower) * Double(k) / Double(grid - 1) }

    /// Time mapped to [0, 1] over the domain (the network's time input).
    public func normalized(_ t: Double) -> Double { (t - lower) / (upper - lower) }

    public func contains(_ t: Double) -> Bool { t >= lower && t <= upper }

    /// The grid cell of time t (clamped to the domain): t lies between grid points index and index + 1,
    /// at weight (0...1) of the second.
    public func cell(at t: Double) -> (index: Int, weight: Double) {
        let u = min(max(normalized(t), 0), 1) * Double(grid - 1)
        let k = min(Int(u), grid - 2)
        return (k, u - Double(k))
    }

    /// Linear interpolation of dense-grid values (grid of them, starting at values.startIndex) at time t.
    public func interpolate<C: RandomAccessCollection>(_ values: C, at t: Double) -> Double
    where C.Element: BinaryFloatingPoint, C.Index == Int {
        let (k, f) = cell(at: t)
        let base = values.startIndex
        return Double(values[base + k]) * (1 - f) + Double(values[base + k + 1]) * f
    }

    /// A data series observed at time t, from its noisy dense-grid values: interpolated between the
    /// two neighbouring grid points with the observation noise the average loses restored
    /// (`ObservationNoise.between`), so the value scatters by the declared noise at every time, as a
    /// real observation does, not only at grid points. Without noise, plain interpolation (no draw).
    public func observe<C: RandomAccessCollection>(_ values: C, at t: Double, noise: ObservationNoise?,
                                                   _ rng: inout RandomStream) -> Double
    where C.Element: BinaryFloatingPoint, C.Index == Int {
        guard let noise else { return interpolate(values, at: t) }
        let (k, f) = cell(at: t)
        let base = values.startIndex
        return noise.between(Double(values[base + k]), Double(values[base + k + 1]), weight: f, &rng)
    }
}

/// A closed interval [lower, upper] holding every value of a variable under its prior.
public struct Support: Codable, Hashable, Sendable {
    public var lower: Double
    public var upper: Double
    public init(_ lower: Double, _ upper: Double) { self.lower = lower; self.upper = upper }
    public func contains(_ x: Double) -> Bool { x >= lower && x <= upper }
}

/// How a data series' observations scatter around the noise-free signal, independently at every
/// observed time: `additive` y = s + std z, `lognormal` y = s exp(std z), z ~ N(0, 1).
/// Interpolation between sampled support times uses it to restore the noise the average of two
/// draws loses (see `QueryPlan.target(node:times:)`).
public struct ObservationNoise: Codable, Hashable, Sendable {
    public enum Kind: String, Codable, CaseIterable, Sendable { case additive, lognormal }
    public var kind: Kind
    public var std: Double
    /// The largest std an archive accepts (its manifest check).
    public static let largestStd = 1e6
    public init(_ kind: Kind, std: Double) { self.kind = kind; self.std = std }

    /// "additive 0.1", "lognormal 0.05" (the form of the training-set attribute sbiwatch_noise).
    public var text: String { "\(kind.rawValue) \(std)" }

    /// The value at weight w between two observations a, b of a series (w = 0 is a), each with this
    /// noise independently: the average (1 - w) a + w b keeps only (1 - w)^2 + w^2 of the noise's
    /// variance; the rest, 2 w (1 - w) std^2, is drawn afresh from rng (in log space for lognormal
    /// noise), so the value has the full noise. At w = 0 or 1, or with std 0, nothing is drawn.
    public func between(_ a: Double, _ b: Double, weight w: Double, _ rng: inout RandomStream) -> Double {
        let linear = a * (1 - w) + b * w
        guard std > 0, w > 0, w < 1 else { return linear }
        let fresh = (2 * w * (1 - w)).squareRoot() * std * rng.normal()
        switch kind {
        case .additive: return linear + fresh
        case .lognormal:
            guard a > 0, b > 0 else { return linear * exp(fresh) }
            return exp(log(a) * (1 - w) + log(b) * w + fresh)
        }
    }

    public init?(text: String) {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2, let kind = Kind(rawValue: String(parts[0]).lowercased()),
              let std = Double(parts[1]), std.isFinite, std >= 0, std <= Self.largestStd else { return nil }
        self.init(kind, std: std)
    }
}

/// One named variable: a vector of `size` scalars (one token each), or, with a `time` axis,
/// a function of time observed or queried at any times (one node, one token per time).
public struct VariableSpec: Codable, Hashable, Sendable {
    public var name: String
    public var kind: VariableKind
    public var size: Int
    public var units: String?
    public var time: TimeAxis?
    /// The prior's support per scalar, when bounded (reports warn about samples outside it).
    public var support: Support?
    /// A data series' observation noise, when the simulator declares it.
    public var noise: ObservationNoise?

    public init(name: String, kind: VariableKind, size: Int, units: String? = nil, support: Support? = nil) {
        self.name = name; self.kind = kind; self.size = size; self.units = units; self.support = support
    }

    /// A time-indexed variable (one node).
    public init(name: String, kind: VariableKind, time: TimeAxis, units: String? = nil, support: Support? = nil,
                noise: ObservationNoise? = nil) {
        self.name = name; self.kind = kind; self.size = 1; self.units = units; self.time = time; self.support = support
        self.noise = noise
    }

    /// Values per simulation in the dense layout: size, or the grid for a time-indexed variable.
    public var denseWidth: Int { time?.grid ?? size }

    /// A parameter that is a function of time (e.g. SIRD's beta(t)).
    public var isFunctionOfTime: Bool { kind == .parameter && time != nil }
}

/// One token: a node, and a time when the node's variable is time-indexed.
public struct TokenRef: Hashable, Sendable {
    public var node: Int
    public var time: Double?
    public init(node: Int, time: Double? = nil) { self.node = node; self.time = time }
}

/// How attention is restricted (METHOD.md, "Network").
public enum AttentionMaskKind: String, Codable, CaseIterable, Sendable {
    /// every token attends to every token
    case dense
    /// the moralised dependency graph, M | M^T | M^T M, plus the diagonal
    case undirected
    /// recomputed for each condition mask: a minimal faithful inversion of the dependency graph
    /// (latent tokens attend to what they depend on given the observed ones; see AttentionMasks)
    case directed
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

    /// This spec with each variable's max points and declared observation noise taken from the same
    /// variable of `other` (matched by position; the rest unchanged): for comparing specs apart from
    /// what shapes training examples but not the network.
    public func withExampleSettings(of other: ModelSpec) -> ModelSpec {
        var out = self
        for k in out.variables.indices where k < other.variables.count {
            if out.variables[k].time != nil, let m = other.variables[k].time?.maxPoints { out.variables[k].time?.maxPoints = m }
            out.variables[k].noise = other.variables[k].noise
        }
        return out
    }

    /// The spec with every time axis trained with at most `maxPoints` times per variable
    /// (`train --max-points`); refused beyond a variable's grid.
    public func cappingMaxPoints(_ maxPoints: Int) throws -> ModelSpec {
        var out = self
        for (k, v) in variables.enumerated() {
            guard let axis = v.time else { continue }
            guard maxPoints <= axis.grid else {
                throw SbiError(.usage, "--max-points \(maxPoints) is more than \(v.name)'s grid of \(axis.grid) times",
                               hint: "give at most --max-points \(axis.grid)")
            }
            out.variables[k].time?.maxPoints = maxPoints
        }
        return out
    }

    /// First node of each variable.
    public var offsets: [Int] {
        var o: [Int] = [], n = 0
        for v in variables { o.append(n); n += v.size }
        return o
    }

    public func variableIndex(named name: String) -> Int? { variables.firstIndex { $0.name == name } }

    /// Whether any variable is time-indexed.
    public var hasTimeIndexed: Bool { variables.contains { $0.time != nil } }

    /// Variable of each node.
    public var variableOfNode: [Int] { variables.indices.flatMap { v in [Int](repeating: v, count: variables[v].size) } }

    /// Values per simulation in the dense layout (variable by variable).
    public var denseWidth: Int { variables.reduce(0) { $0 + $1.denseWidth } }

    /// First dense column of each variable.
    public var denseOffsets: [Int] {
        var o: [Int] = [], n = 0
        for v in variables { o.append(n); n += v.denseWidth }
        return o
    }

    /// The tokens of every node of a model without time-indexed variables.
    public var fixedLayout: [TokenRef] { (0..<nodeCount).map { TokenRef(node: $0) } }

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

    /// allowed (T,T) row-major for the nodes of a model without time-indexed variables.
    public func attentionMask(_ kind: AttentionMaskKind) -> [UInt8] {
        AttentionMasks(spec: self).mask(for: fixedLayout, kind: kind)
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
