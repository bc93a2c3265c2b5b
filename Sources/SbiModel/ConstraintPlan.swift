// Resolving a parsed constraint onto the tokens of a query: names to nodes, times to latent tokens
// (reused when the query already samples that time), time ranges to a run of latent tokens, and
// the whole to guidance terms plus a check of each finished draw.
import SbiCore

/// A constraint resolved onto a query's tokens: its guidance, and whether a draw satisfies it.
public struct PlannedConstraint: @unchecked Sendable {
    /// The form over token indices: a weighted sum, or the largest or smallest of some tokens.
    public enum Form: Sendable { case linear([(node: Int, weight: Double)]), maximum([Int]), minimum([Int]) }
    public var expression: String
    public var form: Form
    public var lower: Double
    public var upper: Double
    /// Soft equality: satisfied within target +- tolerance (target = lower = upper).
    public var tolerance: Double?

    /// The constrained quantity in one completed draw (indexed like the plan's tokens).
    public func value(_ draw: [Double]) -> Double {
        switch form {
        case .linear(let w): return w.reduce(0) { $0 + $1.weight * draw[$1.node] }
        case .maximum(let n): return n.map { draw[$0] }.max() ?? .nan
        case .minimum(let n): return n.map { draw[$0] }.min() ?? .nan
        }
    }

    public func isSatisfied(_ draw: [Double]) -> Bool {
        let v = value(draw)
        if let tolerance { return abs(v - lower) <= tolerance }
        return v >= lower && v <= upper
    }

    /// The fraction of draws that satisfy the constraint.
    public func fractionSatisfied(_ draws: [[Double]]) -> Double {
        draws.isEmpty ? .nan : Double(draws.filter(isSatisfied).count) / Double(draws.count)
    }

    /// Guidance terms: a linear form as one bound or soft equality; max <= b and min >= b as one bound
    /// per value; max >= b and min <= b ("some value crosses") as a soft extremum.
    var guidance: [any GuidanceConstraint] {
        switch form {
        case .linear(let w):
            if let tolerance { return [SoftLinearEqualityConstraint(weights: w, target: lower, tolerance: tolerance)] }
            return [LinearBoundConstraint(weights: w, lower: lower, upper: upper)]
        case .maximum(let nodes):
            var g: [any GuidanceConstraint] = upper.isFinite ? nodes.map { LinearBoundConstraint(weights: [($0, 1)], lower: -.infinity, upper: upper) } : []
            if lower.isFinite { g.append(ExtremumConstraint(nodes: nodes, bound: lower, minimum: false)) }
            return g
        case .minimum(let nodes):
            var g: [any GuidanceConstraint] = lower.isFinite ? nodes.map { LinearBoundConstraint(weights: [($0, 1)], lower: lower, upper: .infinity) } : []
            if upper.isFinite { g.append(ExtremumConstraint(nodes: nodes, bound: upper, minimum: true)) }
            return g
        }
    }
}

extension QueryPlan {
    /// Adds a constraint of the constraint language. Resolve constraints after observations and query
    /// grids, so that times the query samples anyway are constrained rather than sampled twice.
    /// Errors (exit 65) quote the expression and point at the atom at fault.
    public mutating func constrain(_ e: ConstraintExpression) throws {
        var weights: [Int: Double] = [:], order: [Int] = []
        var extremum: PlannedConstraint.Form?
        for (w, atom) in e.terms {
            let nodes = try latentTokens(for: atom, in: e)
            switch atom.kind {
            case .max: extremum = .maximum(nodes)
            case .min: extremum = .minimum(nodes)
            case .value, .mean:
                let share = w / Double(nodes.count)
                for n in nodes {
                    if weights[n] == nil { order.append(n) }
                    weights[n, default: 0] += share
                }
            }
        }
        var linear = order.compactMap { n in weights[n].flatMap { $0 == 0 ? nil : (node: n, weight: $0) } }
        guard extremum != nil || !linear.isEmpty else {
            throw ConstraintExpression.error(e.text, 0..<e.text.count, "the variables cancel out; the constraint is constant")
        }
        // scaled to a largest weight of 1, so guidance is as sharp for 1000*x <= 1000 as for x <= 1
        let scale = linear.map { abs($0.weight) }.max() ?? 1
        linear = linear.map { (node: $0.node, weight: $0.weight / scale) }
        append(PlannedConstraint(expression: e.text, form: extremum ?? .linear(linear), lower: e.lower / scale, upper: e.upper / scale,
                                 tolerance: e.tolerance.map { $0 / scale }))
    }

    /// The latent tokens an atom stands for: one for a value, a run over the time range for an aggregate.
    mutating func latentTokens(for atom: ConstraintAtom, in e: ConstraintExpression) throws -> [Int] {
        let node = try constraintNode(atom, e)
        let v = spec.variables[spec.variableOfNode[node]]
        guard let axis = v.time else {
            guard atom.time == nil, atom.range == nil else {
                throw ConstraintExpression.error(e.text, atom.span, "\(v.name) is not time-indexed", hint: "drop the '@' and the time")
            }
            let i = tokenIndex(ofFixedNode: node)!
            guard observed[i] == nil else {
                throw ConstraintExpression.error(e.text, atom.span, "\(label(ofToken: i)) is observed exactly in this query, so there is nothing to constrain",
                                                 hint: "drop the constraint or the observation of \(label(ofToken: i))")
            }
            return [i]
        }
        if let t = atom.time {
            try checkConstraintTime(t, axis, v, atom, e)
            if let i = tokens.indices.first(where: { tokens[$0].node == node && tokens[$0].time == t }) {
                guard observed[i] == nil else {
                    throw ConstraintExpression.error(e.text, atom.span, "\(v.name) is observed exactly at \(t) in this query, so there is nothing to constrain",
                                                     hint: "constrain a time that is not observed")
                }
                return [i]
            }
            return [appendLatentToken(node: node, time: t)]
        }
        guard let range = atom.range else {
            throw ConstraintExpression.error(e.text, atom.span, "\(v.name) is time-indexed; give a time",
                                             hint: "e.g. \(v.name)@\(Int(axis.lower)) for one time, or max(\(v.name)@LO:HI) over a range")
        }
        try checkConstraintTime(range.lowerBound, axis, v, atom, e)
        try checkConstraintTime(range.upperBound, axis, v, atom, e)
        return rangeTokens(node: node, range: range, axis: axis)
    }

    /// The query's latent tokens of `node` inside the range when it has at least two; otherwise those
    /// and new ones, evenly spaced at the trained density (at least 2, at most what keeps the variable
    /// within its trained number of tokens), skipping times the query already has a token at.
    mutating func rangeTokens(node: Int, range: ClosedRange<Double>, axis: TimeAxis) -> [Int] {
        let existing = tokens.indices.filter { tokens[$0].node == node && tokens[$0].time.map(range.contains) == true && observed[$0] == nil }
        if existing.count >= 2 { return existing }
        let span = axis.upper - axis.lower
        let density = Int(((range.upperBound - range.lowerBound) / span * Double(axis.maxPoints - 1)).rounded(.down)) + 1
        let room = axis.maxPoints - tokens.filter { $0.node == node }.count
        let count = max(2, min(density, room))
        let taken = Set(tokens.filter { $0.node == node }.compactMap(\.time))
        let added = (0..<count).compactMap { k -> Int? in
            let t = range.lowerBound + (range.upperBound - range.lowerBound) * Double(k) / Double(count - 1)
            return taken.contains(t) ? nil : appendLatentToken(node: node, time: t)
        }
        return existing + added
    }

    /// The node an atom names, with errors that point at it.
    func constraintNode(_ atom: ConstraintAtom, _ e: ConstraintExpression) throws -> Int {
        guard let vi = spec.variableIndex(named: atom.name) else {
            throw ConstraintExpression.error(e.text, atom.span, "the model has no variable '\(atom.name)'",
                                             hint: "its variables are: \(spec.variables.map(\.name).joined(separator: ", "))")
        }
        let v = spec.variables[vi], first = spec.nodes(of: vi).lowerBound
        guard let index = atom.index else {
            guard v.size == 1 else {
                throw ConstraintExpression.error(e.text, atom.span, "\(v.name) has \(v.size) values; name one",
                                                 hint: "e.g. \(v.name)[0] (0 to \(v.size - 1))")
            }
            return first
        }
        guard index < v.size else {
            throw ConstraintExpression.error(e.text, atom.span, "\(v.name)[\(index)] is out of range: \(v.name) has elements 0...\(v.size - 1)")
        }
        return first + index
    }

    func checkConstraintTime(_ t: Double, _ axis: TimeAxis, _ v: VariableSpec, _ atom: ConstraintAtom, _ e: ConstraintExpression) throws {
        guard axis.contains(t) else {
            throw ConstraintExpression.error(e.text, atom.span,
                                             "time \(t) is outside the time domain of \(v.name), [\(axis.lower), \(axis.upper)]\(axis.units.map { " " + $0 } ?? "")",
                                             hint: "the model was trained on that domain only")
        }
    }
}
