// Reference simulations stored with a model (reference.json in the archive): draws of the
// simulator's prior predictive on the dense grid, against which each file's observations are
// compared (the out-of-distribution check) and from which the prior's spread is read (contraction).
import Foundation
import SbiCore
import SbiModel

/// Where one value of a dense simulation row is read: a fixed node's column, or a time-indexed
/// variable at a time (linearly interpolated on its dense grid).
public struct DensePoint: Hashable, Sendable {
    public var variable: Int
    /// Element of a fixed-size variable (0 for a time-indexed one).
    public var element: Int
    public var time: Double?
    public init(variable: Int, element: Int = 0, time: Double? = nil) {
        self.variable = variable; self.element = element; self.time = time
    }

    /// The point of token `token` of a query over `spec`.
    public init(token: TokenRef, spec: ModelSpec) {
        let v = spec.variableOfNode[token.node]
        self.init(variable: v, element: token.node - spec.offsets[v], time: token.time)
    }

    /// Its value in a dense row of `spec`, as an observation: a data series' declared noise is
    /// restored between grid points (`TimeAxis.observe`, drawing from rng).
    public func value(in row: [Float], spec: ModelSpec, offsets: [Int], rng: inout RandomStream) -> Double {
        let o = offsets[variable], v = spec.variables[variable]
        guard let time, let axis = v.time else { return Double(row[o + element]) }
        return axis.observe(row[o..<(o + axis.grid)], at: time, noise: v.kind == .data ? v.noise : nil, &rng)
    }
}

/// Prior predictive simulations of a model's variables, dense layout (reference.json).
public struct ReferenceSet: Codable, Sendable {
    public var format = "sbiwatch-reference-1"
    /// How the rows were drawn, e.g. "task sird, seed 2 (split 0x4EF)".
    public var origin: String
    /// (simulations, spec.denseWidth), rounded to float
    public var rows: [[Float]]

    public init(origin: String, rows: [[Double]]) {
        self.origin = origin
        self.rows = rows.map { $0.map { Float($0) } }
    }

    /// (simulations, points): the rows read at `points` as observations (series noise restored
    /// between grid points from a fixed stream, so a file's checks do not depend on anything else).
    public func values(at points: [DensePoint], spec: ModelSpec) -> [[Double]] {
        let offsets = spec.denseOffsets
        var rng = RandomStream(seed: Self.observationNoiseSeed)
        return rows.map { row in points.map { $0.value(in: row, spec: spec, offsets: offsets, rng: &rng) } }
    }

    /// The seed of the noise restored when reference rows are read between grid points.
    static let observationNoiseSeed: UInt64 = 0x0B5E_5EED

    /// The prior's standard deviation at each point (over the reference rows).
    public func priorStandardDeviation(at points: [DensePoint], spec: ModelSpec) -> [Double] {
        let v = values(at: points, spec: spec)
        return points.indices.map { j in standardDeviation(v.map { $0[j] }) }
    }
}

/// Sample standard deviation.
func standardDeviation(_ x: [Double]) -> Double {
    guard x.count > 1 else { return 0 }
    let m = x.reduce(0, +) / Double(x.count)
    return (x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count - 1)).squareRoot()
}
