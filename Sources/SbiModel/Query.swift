// A query: which tokens to sample, which are observed (exactly or by interval), which to report.
import SbiCore

/// Builds the token layout of one conditional-sampling request. Every fixed node is present (latent
/// unless observed); time-indexed variables get a token per observed time and per queried time;
/// time-indexed variables neither observed nor queried get no tokens at all (marginalised out).
public struct QueryPlan: Sendable {
    public let spec: ModelSpec
    public private(set) var tokens: [TokenRef]
    public private(set) var observed: [Int: Double] = [:]
    public private(set) var constraints: [any GuidanceConstraint] = []
    /// The interval observations among `constraints` (the rest come from the constraint language).
    private var intervalObservations: [any GuidanceConstraint] = []
    /// Constraints given in the constraint language, resolved onto tokens (for the report's satisfaction figures).
    public private(set) var plannedConstraints: [PlannedConstraint] = []
    /// Reported values, in order: a sampled token, or a value interpolated between two sampled ones.
    enum Target: Sendable { case token(Int), interpolated(Int) }
    private var reported: [Target] = []
    /// Times reported by interpolation, and how: the two sampled tokens around each and the weight of the later one.
    public private(set) var interpolatedTokens: [TokenRef] = []
    private var interpolation: [(lower: Int, upper: Int, weight: Double)] = []

    /// Indices of the reported values in a completed draw (see `complete`): sampled tokens are
    /// 0..<tokens.count, interpolated values follow them.
    public var targets: [Int] {
        reported.map { t in
            switch t {
            case .token(let i): return i
            case .interpolated(let v): return tokens.count + v
            }
        }
    }

    /// A token of a completed draw: sampled, or interpolated.
    public func token(_ i: Int) -> TokenRef { i < tokens.count ? tokens[i] : interpolatedTokens[i - tokens.count] }

    /// Draws of `tokens` extended by the interpolated values, so `targets` index them.
    public func complete(_ draws: [[Double]]) -> [[Double]] {
        guard !interpolation.isEmpty else { return draws }
        return draws.map { d in d + interpolation.map { d[$0.lower] * (1 - $0.weight) + d[$0.upper] * $0.weight } }
    }

    public init(spec: ModelSpec) {
        self.spec = spec
        let varOf = spec.variableOfNode
        tokens = (0..<spec.nodeCount).filter { spec.variables[varOf[$0]].time == nil }.map { TokenRef(node: $0) }
    }

    public var conditioning: Conditioning { Conditioning(observed: observed, constraints: constraints) }

    /// The conditioning without the constraint-language constraints: observations, exact and by
    /// interval, only (what the same query gives when nothing else is asked of it).
    public var unconstrainedConditioning: Conditioning { Conditioning(observed: observed, constraints: intervalObservations) }

    func tokenIndex(ofFixedNode node: Int) -> Int? { tokens.firstIndex { $0.node == node && $0.time == nil } }

    func axis(of node: Int) -> (VariableSpec, TimeAxis?) {
        let v = spec.variables[spec.variableOfNode[node]]
        return (v, v.time)
    }

    /// Checks a time against the variable's domain.
    func checkTime(_ t: Double, node: Int) throws {
        let (v, axis) = axis(of: node)
        guard let axis else { throw SbiError(.usage, "\(v.name) is not time-indexed; give it without times") }
        guard t.isFinite, axis.contains(t) else {
            throw SbiError(.badInput, "time \(t) is outside the time domain of \(v.name), [\(axis.lower), \(axis.upper)]\(axis.units.map { " " + $0 } ?? "")",
                           hint: "the model was trained on that domain only; query or observe \(v.name) within it")
        }
    }

    /// Whether a fixed node is observed exactly.
    public func isObserved(node: Int) -> Bool { tokenIndex(ofFixedNode: node).map { observed[$0] != nil } ?? false }

    /// Observes a fixed node exactly.
    public mutating func observe(node: Int, value: Double) throws {
        guard let i = tokenIndex(ofFixedNode: node) else { throw SbiError(.usage, "\(spec.label(ofNode: node)) is time-indexed; give times") }
        guard value.isFinite else { throw SbiError(.badInput, "the value of \(spec.label(ofNode: node)) is not finite") }
        observed[i] = value
    }

    /// Observes a time-indexed variable at one time.
    public mutating func observe(node: Int, time: Double, value: Double) throws {
        try checkTime(time, node: node)
        guard value.isFinite else { throw SbiError(.badInput, "the value of \(axis(of: node).0.name) at \(time) is not finite") }
        tokens.append(TokenRef(node: node, time: time))
        observed[tokens.count - 1] = value
    }

    /// Constrains a fixed node to [lower, upper] (guidance).
    public mutating func constrain(node: Int, lower: Double, upper: Double) throws {
        guard let i = tokenIndex(ofFixedNode: node) else { throw SbiError(.usage, "intervals on time-indexed variables need a time") }
        guard observed[i] == nil else {
            throw SbiError(.usage, "\(spec.label(ofNode: node)) is both observed and constrained",
                           hint: "give either an exact value or an interval for it, not both")
        }
        constraints.append(IntervalConstraint(node: i, lower: lower, upper: upper))
        intervalObservations.append(constraints[constraints.count - 1])
    }

    /// Constrains a time-indexed variable at one time to [lower, upper] (a latent token guided into it).
    public mutating func constrain(node: Int, time: Double, lower: Double, upper: Double) throws {
        try checkTime(time, node: node)
        tokens.append(TokenRef(node: node, time: time))
        constraints.append(IntervalConstraint(node: tokens.count - 1, lower: lower, upper: upper))
        intervalObservations.append(constraints[constraints.count - 1])
    }

    /// Adds a latent token (sampled, not reported) and returns its index.
    mutating func appendLatentToken(node: Int, time: Double?) -> Int {
        tokens.append(TokenRef(node: node, time: time))
        return tokens.count - 1
    }

    /// Adds a resolved constraint and its guidance terms.
    mutating func append(_ planned: PlannedConstraint) {
        plannedConstraints.append(planned)
        constraints += planned.guidance
    }

    /// Whether the plan reports a time-indexed variable's values by interpolation.
    public func isInterpolated(node: Int) -> Bool { interpolatedTokens.contains { $0.node == node } }

    /// Reports a fixed node.
    public mutating func target(node: Int) throws {
        guard let i = tokenIndex(ofFixedNode: node) else { throw SbiError(.usage, "\(axis(of: node).0.name) is time-indexed; give query times") }
        if !reported.contains(where: { if case .token(i) = $0 { return true }; return false }) { reported.append(.token(i)) }
    }

    /// Samples and reports a time-indexed variable at the given times. A grid with more times than
    /// the model was trained with per variable (`maxPoints`) is sampled at that many support times,
    /// evenly spread over the grid's span, and linearly interpolated in between: beyond its trained
    /// density the network treats neighbouring tokens as nearly independent, so directly sampled
    /// dense grids come out rough, while the support times keep the trained regime.
    public mutating func target(node: Int, times: [Double]) throws {
        let (v, axis) = axis(of: node)
        guard let axis else { throw SbiError(.usage, "\(v.name) is not time-indexed") }
        guard !times.isEmpty else { throw SbiError(.usage, "no query times for \(v.name)") }
        guard times.count <= 1000 else {
            throw SbiError(.usage, "\(times.count) query times for \(v.name); at most 1000 per variable",
                           hint: "query a coarser grid")
        }
        for t in times { try checkTime(t, node: node) }
        let support = axis.maxPoints
        guard times.count > support, support >= 2, let lo = times.min(), let hi = times.max(), hi > lo else {
            for t in times {
                tokens.append(TokenRef(node: node, time: t))
                reported.append(.token(tokens.count - 1))
            }
            return
        }
        let first = tokens.count
        for k in 0..<support { tokens.append(TokenRef(node: node, time: lo + (hi - lo) * Double(k) / Double(support - 1))) }
        for t in times {
            let u = (t - lo) / (hi - lo) * Double(support - 1)
            let k = min(max(Int(u), 0), support - 2)
            interpolation.append((first + k, first + k + 1, u - Double(k)))
            interpolatedTokens.append(TokenRef(node: node, time: t))
            reported.append(.interpolated(interpolatedTokens.count - 1))
        }
    }

    /// Column label of a token of a completed draw: "gamma", "theta[3]", "beta@12.5".
    public func label(ofToken i: Int) -> String {
        let tok = token(i), v = spec.variables[spec.variableOfNode[tok.node]]
        if let t = tok.time { return "\(v.name)@\(t)" }
        return v.size == 1 ? v.name : spec.label(ofNode: tok.node)
    }
}
