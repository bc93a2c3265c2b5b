import ArgumentParser
import Foundation
import SbiArchive
import SbiCore
import SbiModel

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sample any conditional of a model: posterior, likelihood or mixed, with optional intervals.")

    @Option(help: "The model archive (PATH or PATH@sha256:HEX).")
    var model: String

    @Option(help: ArgumentHelp("Observed values, NAME=V[,V...]; NAME is a variable or one element NAME[i].",
                               valueName: "name=values"))
    var observe: [String] = []

    @Option(help: ArgumentHelp("Interval constraint NAME=LO:HI (sampled with guidance; either side may be empty).",
                               valueName: "name=lo:hi"))
    var interval: [String] = []

    @Option(parsing: .upToNextOption, help: "Variables or elements to write (default: every variable not observed).")
    var target: [String] = []

    @Option(help: "Number of samples.")
    var samples: Int = 1000

    @Option(help: "Seed of the sampler.")
    var seed: UInt64 = 0

    @Option(help: "Sampling steps (default: the model's).")
    var steps: Int?

    @Option(help: "Sampler: sde (Euler-Maruyama) or ode (probability flow, Heun).")
    var sampler: SamplerSettings.Method?

    @Option(help: "Resampling steps per step when intervals are given.")
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
        let spec = loaded.model.spec
        var conditioning = Conditioning()
        for o in observe {
            let (name, rhs) = try split(o, "--observe")
            let nodes = try spec.nodes(matching: name)
            let values = try rhs.split(separator: ",", omittingEmptySubsequences: false).map { s -> Double in
                guard let v = Double(s.trimmingCharacters(in: .whitespaces)), v.isFinite else {
                    throw SbiError(.usage, "--observe \(o): '\(s)' is not a finite number")
                }
                return v
            }
            guard values.count == nodes.count else {
                throw SbiError(.usage, "--observe \(o): \(name) has \(nodes.count) value\(nodes.count == 1 ? "" : "s"), \(values.count) given")
            }
            for (n, v) in zip(nodes, values) { conditioning.observed[n] = v }
        }
        for c in interval {
            let (name, rhs) = try split(c, "--interval")
            let parts = rhs.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw SbiError(.usage, "--interval \(c): expected NAME=LO:HI") }
            func bound(_ s: Substring, _ missing: Double) throws -> Double {
                if s.isEmpty { return missing }
                guard let v = Double(s) else { throw SbiError(.usage, "--interval \(c): '\(s)' is not a number") }
                return v
            }
            let lo = try bound(parts[0], -.infinity), hi = try bound(parts[1], .infinity)
            guard lo < hi else { throw SbiError(.usage, "--interval \(c): LO must be below HI") }
            for n in try spec.nodes(matching: name) { conditioning.constraints.append(IntervalConstraint(node: n, lower: lo, upper: hi)) }
        }
        var targets: [Int] = []
        if target.isEmpty {
            targets = (0..<spec.nodeCount).filter { conditioning.observed[$0] == nil }
        } else {
            for t in target { for n in try spec.nodes(matching: t) where !targets.contains(n) { targets.append(n) } }
        }
        guard !targets.isEmpty else { throw SbiError(.usage, "nothing to sample: every variable is observed", hint: "drop an --observe or name a --target") }
        var settings = loaded.manifest.sampler
        if let steps { settings.steps = steps }
        if let sampler { settings.method = sampler }
        settings.resampling = resampling
        let start = Date()
        var lastReport = start
        let draws = try Sampler.sample(loaded.model, conditioning, count: samples, settings: settings,
                                       key: RandomKey(seed: seed), threads: threads) { done, total in
            let now = Date()
            if now.timeIntervalSince(lastReport) >= 2 {
                lastReport = now
                let elapsed = now.timeIntervalSince(start)
                let left = elapsed * Double(total - done) / Double(max(done, 1))
                stderrLine("sampling: \(done)/\(total) samples done, ETA \(Int(left.rounded())) s")
            }
        }
        var csv = targets.map { spec.label(ofNode: $0) }.joined(separator: ",") + "\n"
        for d in draws { csv += targets.map { String(d[$0]) }.joined(separator: ",") + "\n" }
        try AtomicFile.write(Data(csv.utf8), to: out)
        stderrLine("wrote \(samples) samples of \(targets.count) scalars to \(out) in \(String(format: "%.2f", Date().timeIntervalSince(start))) s (\(settings.method.rawValue), \(settings.steps) steps)")
    }

    private func split(_ s: String, _ flag: String) throws -> (String, String) {
        guard let eq = s.firstIndex(of: "=") else { throw SbiError(.usage, "\(flag) \(s): expected NAME=VALUE") }
        return (String(s[..<eq]), String(s[s.index(after: eq)...]))
    }
}
