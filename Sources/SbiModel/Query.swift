// A query: which tokens to sample, which are observed (exactly or by interval), which to report.
import Foundation
import SbiCore

/// How a query grid of a time-indexed variable is answered.
public enum QueryMethod: String, Codable, Sendable {
    /// every queried time is a token the model samples
    case direct
    /// support times are sampled, the rest interpolated between them
    case interpolated
}

/// How one queried variable was answered (the report says it).
public struct QueryAnswer: Codable, Hashable, Sendable {
    /// Support times of an interpolation asked for explicitly (the density files usually come at).
    public static let explicitSupport = 20
    public var method: QueryMethod
    /// Query times, and the times sampled for them (equal when direct).
    public var times: Int
    public var supportTimes: Int
    /// The observation noise restored between support times (data series only).
    public var noise: ObservationNoise?
    /// A data series interpolated without a declared noise: its bands are too narrow between support times.
    public var noiseUnknown: Bool = false
    /// Support times closer together than the simulator's grid: as in training, where values between
    /// grid points are interpolated from it, neighbouring values share their noise, so none is added.
    public var noiseShared: Bool = false

    enum CodingKeys: String, CodingKey {
        case method, times, noise
        case supportTimes = "support_times", noiseUnknown = "noise_unknown", noiseShared = "noise_shared"
    }

    /// One sentence for the report: "answered by the model at all 100 times", "sampled by the model at ...".
    public var sentence: String {
        guard method == .interpolated else { return "answered by the model at all \(times) times" }
        let how = noise?.kind == .lognormal ? "geometrically (linearly in log space)" : "linearly"
        var s = "sampled by the model at \(supportTimes) support times evenly spread over the grid, its \(times) times interpolated \(how) between them"
        if let noise { s += ", with the observation noise the average of two draws loses drawn afresh (\(noise.text))" }
        if noiseUnknown { s += "; the model declares no observation noise, so the bands between support times are too narrow" }
        if noiseShared { s += "; the support times are closer than the simulator's grid, where neighbouring values share their noise, so none is added" }
        return s
    }
}

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
    private var interpolation: [Interpolation] = []
    /// How each queried time-indexed node was answered (by node).
    public private(set) var answers: [Int: QueryAnswer] = [:]

    /// One interpolated value: between sampled tokens lower and upper, weight of upper, and the
    /// observation noise to restore (data series whose model declares it).
    struct Interpolation: Sendable {
        var lower: Int, upper: Int, weight: Double
        var noise: ObservationNoise?
    }

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

    /// Draws of `tokens` extended by the interpolated values, so `targets` index them. Between two
    /// sampled draws y_a, y_b of a data series (weight w of b) the average (1 - w) y_a + w y_b keeps
    /// only (1 - w)^2 + w^2 of the observation noise's variance; the rest, 2 w (1 - w) std^2, is
    /// drawn afresh (in log space for lognormal noise), so a band has its full width at every output
    /// time. Draw d's fresh noise comes from noiseKey.split(d), whatever the thread count.
    public func complete(_ draws: [[Double]], noiseKey: RandomKey) -> [[Double]] {
        guard !interpolation.isEmpty else { return draws }
        return draws.enumerated().map { d, row in
            var rng = RandomStream(key: noiseKey.split(UInt64(d)))
            return row + interpolation.map { Self.interpolate(row, $0, &rng) }
        }
    }

    /// The stream of a sampling key that `complete`'s fresh noise is drawn from (sampling keys' own
    /// splits are per draw index, far below it).
    public static let interpolationNoiseStream: UInt64 = 0x1A7E_5E75

    /// One interpolated value of draw `row` (shape comment: row has tokens.count values).
    static func interpolate(_ row: [Double], _ p: Interpolation, _ rng: inout RandomStream) -> Double {
        let a = row[p.lower], b = row[p.upper], w = p.weight
        guard let noise = p.noise else { return a * (1 - w) + b * w }
        return noise.between(a, b, weight: w, &rng)
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

    /// Reports a fixed node.
    public mutating func target(node: Int) throws {
        guard let i = tokenIndex(ofFixedNode: node) else { throw SbiError(.usage, "\(axis(of: node).0.name) is time-indexed; give query times") }
        if !reported.contains(where: { if case .token(i) = $0 { return true }; return false }) { reported.append(.token(i)) }
    }

    /// Samples and reports a time-indexed variable at the given times, each time its own token, up to
    /// the density the model was trained with per variable (`maxPoints` times). A denser grid, or any
    /// grid with `method: .interpolated`, is sampled at support times evenly spread over the grid's
    /// span (`maxPoints` of them, or `QueryAnswer.explicitSupport` when asked for) and interpolated in
    /// between (see `complete`); a data series' noise is restored there when its support times are at
    /// least the simulator's grid spacing apart (closer ones share their noise in training data, whose
    /// values between grid points are interpolated from the grid). Observed times of the variable do
    /// not count against the limit: a forecast beside a full history is still answered directly, as the
    /// shipped models always did.
    public mutating func target(node: Int, times: [Double], method: QueryMethod? = nil) throws {
        let (v, axis) = axis(of: node)
        guard let axis else { throw SbiError(.usage, "\(v.name) is not time-indexed") }
        guard !times.isEmpty else { throw SbiError(.usage, "no query times for \(v.name)") }
        guard times.count <= 1000 else {
            throw SbiError(.usage, "\(times.count) query times for \(v.name); at most 1000 per variable",
                           hint: "query a coarser grid")
        }
        for t in times { try checkTime(t, node: node) }
        let trained = axis.maxPoints
        let lo = times.min()!, hi = times.max()!
        let interpolate = method == .interpolated || times.count > trained
        if method == .direct && interpolate {
            throw SbiError(.usage, "\(v.name) is asked for directly on \(times.count) times, but the model answers at most \(trained) directly (it was trained with up to \(trained) per variable)",
                           hint: "query at most \(trained) times, or remove sbiwatch_method (or set it to \"interpolate\") to have the grid interpolated")
        }
        // a model trained with one time per variable cannot place support times: it answers directly
        guard interpolate, hi > lo, trained >= 2 || method == .interpolated else {
            for t in times {
                tokens.append(TokenRef(node: node, time: t))
                reported.append(.token(tokens.count - 1))
            }
            answers[node] = QueryAnswer(method: .direct, times: times.count, supportTimes: times.count, noise: nil)
            return
        }
        let cap = method == .interpolated ? QueryAnswer.explicitSupport : trained
        let support = max(2, min(cap, trained, times.count))
        let gridSpacing = (axis.upper - axis.lower) / Double(max(axis.grid - 1, 1))
        let shared = v.kind == .data && v.noise != nil && (hi - lo) / Double(support - 1) < gridSpacing * (1 - 1e-9)
        let noise = v.kind == .data && !shared ? v.noise : nil
        let first = tokens.count
        for k in 0..<support { tokens.append(TokenRef(node: node, time: lo + (hi - lo) * Double(k) / Double(support - 1))) }
        for t in times {
            let u = (t - lo) / (hi - lo) * Double(support - 1)
            let k = min(max(Int(u), 0), support - 2)
            interpolation.append(Interpolation(lower: first + k, upper: first + k + 1, weight: u - Double(k), noise: noise))
            interpolatedTokens.append(TokenRef(node: node, time: t))
            reported.append(.interpolated(interpolatedTokens.count - 1))
        }
        answers[node] = QueryAnswer(method: .interpolated, times: times.count, supportTimes: support, noise: noise,
                                    noiseUnknown: v.kind == .data && v.noise == nil, noiseShared: shared)
    }

    /// Column label of a token of a completed draw: "gamma", "theta[3]", "beta@12.5".
    public func label(ofToken i: Int) -> String {
        let tok = token(i), v = spec.variables[spec.variableOfNode[tok.node]]
        if let t = tok.time { return "\(v.name)@\(t)" }
        return v.size == 1 ? v.name : spec.label(ofNode: tok.node)
    }
}
