// The one place a decoded manifest is checked, field by field, before anything is built from it:
// every size within a limit that keeps loading a model under a fixed memory bound (a few hundred
// MB), every index inside its range, every number finite and meaningful. One error names the field.
import SbiCore
import SbiModel

extension Manifest {
    /// Limits of what sbiwatch loads; far above any model it trains.
    public enum Limits {
        public static let variables = 1000
        public static let nodes = 10_000
        public static let gridPoints = 100_000
        public static let maxPoints = 1000
        public static let layers = 64
        public static let heads = 64
        public static let featureWidth = 1024
        public static let widening = 64
        public static let frequencies = 4096
        /// Float32 values in the weights (400 MB).
        public static let parameters = 100_000_000
        public static let samplerSteps = 10_000
        public static let resampling = 100
    }

    /// Throws a `.badInput` error naming the first field that is out of range or inconsistent.
    public func validate(source: String) throws {
        func bad(_ field: String, _ why: String) -> SbiError {
            SbiError(.badInput, "\(source): manifest.json field \(field) \(why)",
                     hint: "the archive is damaged or was not written by sbiwatch train; rebuild it with the command in its model card")
        }
        try validateVariables(bad)
        try validateNetwork(bad)
        try validateTransformer(bad)
        try validateNormalization(bad)
        guard (2...Limits.samplerSteps).contains(sampler.steps) else { throw bad("sampler.steps", "is \(sampler.steps); it must be in 2...\(Limits.samplerSteps)") }
        guard (0...Limits.resampling).contains(sampler.resampling) else {
            throw bad("sampler.resampling", "is \(sampler.resampling); it must be in 0...\(Limits.resampling)")
        }
        if let high = sampler.sigmaHigh {
            guard sampler.readsSigmaHigh, high.isFinite, high > sampler.sigmaLow else {
                throw bad("sampler.sigma_high", "is \(high) with the \(sampler.method.rawValue) sampler; it is for dpmpp2m and dpmpp2m-sde, above sigma_low")
            }
        }
    }

    private func validateVariables(_ bad: (String, String) -> SbiError) throws {
        guard (1...Limits.variables).contains(spec.variables.count) else { throw bad("spec.variables", "holds \(spec.variables.count) variables; 1...\(Limits.variables) are allowed") }
        var names = Set<String>(), nodes = 0
        for (k, v) in spec.variables.enumerated() {
            let field = "spec.variables[\(k)]"
            guard !v.name.isEmpty, names.insert(v.name).inserted else { throw bad("\(field).name", "is empty or repeats another variable's name") }
            guard (1...Limits.nodes).contains(v.size) else { throw bad("\(field).size", "is \(v.size); it must be in 1...\(Limits.nodes)") }
            nodes += v.size
            guard nodes <= Limits.nodes else { throw bad("spec.variables", "hold more than \(Limits.nodes) values") }
            if let s = v.support, !(s.lower.isFinite && s.upper.isFinite && s.lower < s.upper) {
                throw bad("\(field).support", "is [\(s.lower), \(s.upper)]; it must be finite with lower < upper")
            }
            if let n = v.noise, !(n.std.isFinite && n.std >= 0 && n.std <= ObservationNoise.largestStd) {
                throw bad("\(field).noise.std", "is \(n.std); it must be finite and in 0...\(ObservationNoise.largestStd)")
            }
            guard let a = v.time else { continue }
            guard v.size == 1 else { throw bad("\(field).size", "is \(v.size); a time-indexed variable has size 1") }
            guard a.lower.isFinite, a.upper.isFinite, a.lower < a.upper else { throw bad("\(field).time", "spans [\(a.lower), \(a.upper)]; it must be finite with lower < upper") }
            guard (2...Limits.gridPoints).contains(a.grid) else { throw bad("\(field).time.grid", "is \(a.grid); it must be in 2...\(Limits.gridPoints)") }
            guard (1...min(a.grid, Limits.maxPoints)).contains(a.maxPoints) else {
                throw bad("\(field).time.maxPoints", "is \(a.maxPoints); it must be in 1...\(min(a.grid, Limits.maxPoints))")
            }
        }
        for (i, e) in spec.edges.enumerated() {
            guard (0..<nodes).contains(e.parent), (0..<nodes).contains(e.child), e.parent != e.child else {
                throw bad("spec.edges[\(i)]", "is \(e.parent) -> \(e.child); both ends must be different nodes in 0..<\(nodes)")
            }
        }
    }

    private func validateNetwork(_ bad: (String, String) -> SbiError) throws {
        switch network.sde {
        case .ve(let lo, let hi):
            guard lo.isFinite, hi.isFinite, lo > 0, hi > lo else { throw bad("network.sde", "has sigmaMin \(lo), sigmaMax \(hi); it needs 0 < sigmaMin < sigmaMax") }
        case .vp(let lo, let hi):
            guard lo.isFinite, hi.isFinite, lo > 0, hi > lo else { throw bad("network.sde", "has betaMin \(lo), betaMax \(hi); it needs 0 < betaMin < betaMax") }
            guard network.resolvedParametrisation == .noise else {
                throw bad("network.parametrisation", "is \(network.resolvedParametrisation.rawValue) with a VP SDE; only the VE SDE has it")
            }
        }
    }

    private func validateTransformer(_ bad: (String, String) -> SbiError) throws {
        let t = transformer
        let sizes: [(String, Int, ClosedRange<Int>)] = [
            ("layers", t.layers, 1...Limits.layers), ("heads", t.heads, 1...Limits.heads), ("keySize", t.keySize, 1...Limits.featureWidth),
            ("widening", t.widening, 1...Limits.widening), ("idDim", t.idDim, 1...Limits.featureWidth),
            ("valueDim", t.valueDim, 1...Limits.featureWidth), ("timeDim", t.timeDim, 0...Limits.featureWidth),
            ("condDim", t.condDim, 0...Limits.featureWidth), ("timeFrequencies", t.timeFrequencies, 0...Limits.frequencies),
            ("contextFrequencies", t.contextFrequencies, 1...Limits.frequencies), ("identifiers", t.identifiers, 1...Limits.nodes),
        ]
        for (name, value, range) in sizes where !range.contains(value) {
            throw bad("transformer.\(name)", "is \(value); it must be in \(range.lowerBound)...\(range.upperBound)")
        }
        for (name, value) in [("timeFrequencyStd", t.timeFrequencyStd), ("contextFrequencyStd", t.contextFrequencyStd),
                              ("conditionInitStd", t.conditionInitStd)] where !(value.isFinite && value >= 0) {
            throw bad("transformer.\(name)", "is \(value); it must be finite and not negative")
        }
        // the weights of all blocks, counted in Double so absurd sizes cannot overflow
        let c = Double(t.width), a = Double(t.attentionWidth), h = Double(t.hiddenWidth)
        let perBlock = 4 * c + c * 3 * a + 3 * a + a * c + c + c * h + h + h * c + c + c * Double(2 * t.contextFrequencies)
        let total = Double(t.layers) * perBlock + Double(t.identifiers * t.idDim) + Double(2 * t.timeFrequencies * t.timeDim)
        guard total <= Double(Limits.parameters) else {
            throw bad("transformer", "describes a network of about \(Int(total)) weights, over the limit of \(Limits.parameters)")
        }
    }

    private func validateNormalization(_ bad: (String, String) -> SbiError) throws {
        let n = spec.nodeCount
        guard normalization.mean.count == n, normalization.std.count == n else {
            throw bad("normalization", "has \(normalization.mean.count) means and \(normalization.std.count) stds for \(n) nodes")
        }
        if let i = normalization.mean.firstIndex(where: { !$0.isFinite }) { throw bad("normalization.mean[\(i)]", "is \(normalization.mean[i]); it must be finite") }
        if let i = normalization.std.firstIndex(where: { !($0.isFinite && $0 > 0) }) {
            throw bad("normalization.std[\(i)]", "is \(normalization.std[i]); it must be finite and positive")
        }
        guard let logit = normalization.logit else { return }
        guard logit.count == n else { throw bad("normalization.logit", "has \(logit.count) entries for \(n) nodes") }
        for (i, b) in logit.enumerated() {
            if let b, !(b.lower.isFinite && b.upper.isFinite && b.lower < b.upper) {
                throw bad("normalization.logit[\(i)]", "is [\(b.lower), \(b.upper)]; it must be finite bounds, lower below upper")
            }
        }
    }
}
