import ArgumentParser
import Foundation
import SbiArchive
import SbiCore
import SbiModel

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sample any conditional of a model: posterior, likelihood or mixed, with optional intervals and constraints.")

    @Option(help: "The model archive (PATH or PATH@sha256:HEX).")
    var model: String

    @Option(help: ArgumentHelp("Observed values, NAME=V[,V...]; NAME is a variable or one element NAME[i]; a time series as NAME=T:V[,T:V...].",
                               valueName: "name=values"))
    var observe: [String] = []

    @Option(help: ArgumentHelp("Interval constraint NAME=LO:HI (sampled with guidance; either side may be empty).",
                               valueName: "name=lo:hi"))
    var interval: [String] = []

    @Option(help: ArgumentHelp("A constraint in the constraint language (repeatable), e.g. \"gamma + delta <= 0.6\" or \"max(infected@30:50) <= 0.08\"; see man sbiwatch, CONSTRAINTS.",
                               valueName: "expression"))
    var constraint: [String] = []

    @Option(parsing: .upToNextOption, help: ArgumentHelp("Variables or elements to write (default: every scalar variable not observed); a time-indexed one with query times, NAME@LO:HI:COUNT or NAME@T1,T2,...", valueName: "name"))
    var target: [String] = []

    @Option(help: "Number of samples.")
    var samples: Int = 1000

    @Option(help: "Seed of the sampler.")
    var seed: UInt64 = 0

    @Option(help: "Sampling steps (default: the model's).")
    var steps: Int?

    @Option(help: "Sampler: sde (Euler-Maruyama), ode (probability flow, Heun), edm (Heun over Karras noise levels), dpmpp2m (DPM-Solver++(2M) over them) or dpmpp2m-sde (its stochastic form).")
    var sampler: SamplerSettings.Method?

    @Option(help: "Resampling steps per step when intervals or constraints are given.")
    var resampling: Int = 0

    @Option(help: "Where to write the CSV (one column per requested scalar).")
    var out: String

    @Option(help: "Worker threads (default: the processor count).")
    var threads: Int?

    func validate() throws {
        guard samples >= 1 else { throw ValidationError("--samples must be at least 1") }
        if let steps, steps < 2 { throw ValidationError("--steps must be at least 2") }
        guard resampling >= 0 else { throw ValidationError("--resampling cannot be negative") }
    }

    func run() throws {
        let loaded = try ModelArchive.load(model)
        let plan = try queryPlan(spec: loaded.model.spec)
        var settings = loaded.manifest.sampler.overriding(steps: steps, method: sampler)
        settings.resampling = resampling
        let start = Date()
        var lastReport = start
        let draws = plan.complete(try Sampler.sample(loaded.model, tokens: plan.tokens, plan.conditioning, count: samples,
                                       settings: settings, key: RandomKey(seed: seed), threads: threads) { done, total in
            let now = Date()
            if now.timeIntervalSince(lastReport) >= 2 {
                lastReport = now
                let elapsed = now.timeIntervalSince(start)
                let left = elapsed * Double(total - done) / Double(max(done, 1))
                stderrLine("sampling: \(done)/\(total) samples done, ETA \(Int(left.rounded())) s")
            }
        }, noiseKey: RandomKey(seed: seed).split(QueryPlan.interpolationNoiseStream))
        for c in plan.plannedConstraints {
            stderrLine("constraint \(c.expression): satisfied by \(String(format: "%.1f", 100 * c.fractionSatisfied(draws)))% of samples")
        }
        let targets = plan.targets
        var csv = targets.map { plan.label(ofToken: $0) }.joined(separator: ",") + "\n"
        for d in draws { csv += targets.map { String(d[$0]) }.joined(separator: ",") + "\n" }
        try AtomicFile.write(Data(csv.utf8), to: out)
        stderrLine("wrote \(samples) samples of \(plan.targets.count) scalars to \(out) in \(String(format: "%.2f", Date().timeIntervalSince(start))) s (\(settings.method.rawValue), \(settings.steps) steps)")
    }

    /// The query of the command line: --observe, --interval, --target (default: every unobserved fixed node).
    func queryPlan(spec: ModelSpec) throws -> QueryPlan {
        var plan = QueryPlan(spec: spec)
        for o in observe { try addObservation(o, spec: spec, to: &plan) }
        for c in interval { try addInterval(c, spec: spec, to: &plan) }
        if target.isEmpty {
            for n in 0..<spec.nodeCount where !isTimeIndexed(spec, n) {
                if plan.observed[plan.tokens.firstIndex { $0.node == n && $0.time == nil }!] == nil { try plan.target(node: n) }
            }
        }
        for t in target {
            let (name, at) = splitTime(t)
            for n in try spec.nodes(matching: name) {
                if let at { try plan.target(node: n, times: try times(at, t)) }
                else if isTimeIndexed(spec, n) {
                    throw SbiError(.usage, "--target \(t): \(name) is time-indexed; give query times, e.g. \(name)@0:50:101 (LO:HI:COUNT) or \(name)@1,2,3")
                } else { try plan.target(node: n) }
            }
        }
        for c in constraint { try plan.constrain(try ConstraintExpression(parsing: c)) }
        guard !plan.targets.isEmpty else { throw SbiError(.usage, "nothing to sample: every variable is observed", hint: "drop an --observe or name a --target") }
        return plan
    }

    /// --observe NAME=V[,V...], NAME=T:V[,T:V...] or NAME@T=V.
    func addObservation(_ o: String, spec: ModelSpec, to plan: inout QueryPlan) throws {
        let (lhs, rhs) = try split(o, "--observe")
        let (name, at) = splitTime(lhs)
        let nodes = try spec.nodes(matching: name)
        let items = rhs.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard isTimeIndexed(spec, nodes[0]) else {
            guard items.count == nodes.count else {
                throw SbiError(.usage, "--observe \(o): \(name) has \(nodes.count) value\(nodes.count == 1 ? "" : "s"), \(items.count) given")
            }
            for (n, v) in zip(nodes, items) { try plan.observe(node: n, value: try number(v, o)) }
            return
        }
        for item in items {
            let pair: (String, String)
            if let at { pair = (at, item) } else {
                let parts = item.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw SbiError(.usage, "--observe \(o): \(name) is a time series; give TIME:VALUE pairs, e.g. \(name)=0.5:1.2,3:0.8")
                }
                pair = (String(parts[0]), String(parts[1]))
            }
            try plan.observe(node: nodes[0], time: try number(pair.0, o), value: try number(pair.1, o))
        }
    }

    /// --interval NAME=LO:HI (either side may be empty).
    func addInterval(_ c: String, spec: ModelSpec, to plan: inout QueryPlan) throws {
        let (lhs, rhs) = try split(c, "--interval")
        let (name, at) = splitTime(lhs)
        let parts = rhs.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw SbiError(.usage, "--interval \(c): expected NAME=LO:HI") }
        let lo = parts[0].isEmpty ? -Double.infinity : try number(String(parts[0]), c)
        let hi = parts[1].isEmpty ? Double.infinity : try number(String(parts[1]), c)
        guard lo < hi else { throw SbiError(.usage, "--interval \(c): LO must be below HI") }
        for n in try spec.nodes(matching: name) {
            if let at { try plan.constrain(node: n, time: try number(at, c), lower: lo, upper: hi) }
            else { try plan.constrain(node: n, lower: lo, upper: hi) }
        }
    }

    private func isTimeIndexed(_ spec: ModelSpec, _ node: Int) -> Bool { spec.variables[spec.variableOfNode[node]].time != nil }

    /// "NAME@REST" -> (NAME, REST); "NAME" -> (NAME, nil).
    private func splitTime(_ s: String) -> (String, String?) {
        guard let at = s.firstIndex(of: "@") else { return (s, nil) }
        return (String(s[..<at]), String(s[s.index(after: at)...]))
    }

    private func number(_ s: String, _ context: String) throws -> Double {
        guard let v = Double(s.trimmingCharacters(in: .whitespaces)), v.isFinite else {
            throw SbiError(.usage, "\(context): '\(s)' is not a finite number")
        }
        return v
    }

    /// "LO:HI:COUNT" (evenly spaced, both ends included) or "T1,T2,...".
    private func times(_ s: String, _ context: String) throws -> [Double] {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 3 {
            let lo = try number(String(parts[0]), context), hi = try number(String(parts[1]), context)
            guard let n = Int(parts[2]), n >= 1, n <= 1000 else {
                throw SbiError(.usage, "\(context): COUNT must be an integer between 1 and 1000")
            }
            return n == 1 ? [lo] : (0..<n).map { lo + (hi - lo) * Double($0) / Double(n - 1) }
        }
        return try s.split(separator: ",").map { try number(String($0), context) }
    }

    private func split(_ s: String, _ flag: String) throws -> (String, String) {
        guard let eq = s.firstIndex(of: "=") else { throw SbiError(.usage, "\(flag) \(s): expected NAME=VALUE") }
        return (String(s[..<eq]), String(s[s.index(after: eq)...]))
    }
}
