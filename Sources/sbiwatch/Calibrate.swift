import ArgumentParser
import Foundation
import SbiArchive
import SbiChecks
import SbiCore
import SbiModel

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the calibration of an existing model archive and write it anew with calibration.json.",
        discussion: "The new archive has new bytes and so a new pin; its provenance records this command. With --sampler and --sampler-steps the archive stores that sampler as its default, and the calibration is measured under it. Models trained on a built-in task are calibrated on fresh simulations of it; models trained from a simulation file need --simulations with held-out simulations the model never saw.")

    @Argument(help: ArgumentHelp("The model archive (PATH or PATH@sha256:HEX).", valueName: "model"))
    var model: String

    @Option(help: "Where to write the calibrated archive (.sbim; the input itself is replaced atomically).")
    var out: String

    @Option(help: "Held-out simulations (default: what fits in 10% of the model's training time, 20 to 1000).")
    var cases: Int?

    @Option(help: "Seed of the held-out simulations (default: the model's training seed; they are drawn apart from its training data).")
    var seed: UInt64?

    @Option(help: ArgumentHelp("Held-out simulations (a training set the model was not trained on); needed for models trained from a file.",
                               valueName: "sims.nc"))
    var simulations: String?

    @Option(help: "A new default sampler to store with the model and calibrate it under: sde, ode, edm, dpmpp2m or dpmpp2m-sde (needs --sampler-steps).")
    var sampler: SamplerSettings.Method?

    @Option(name: .customLong("sampler-steps"), help: "The new default sampler's steps (with --sampler, or alone for the model's sampler).")
    var samplerSteps: Int?

    @Option(name: .customLong("sigma-low"), help: ArgumentHelp(
        "The stored noise-level sampler's last level before 0, in the network's normalised units (default: the model's).",
        valueName: "level"))
    var sigmaLow: Double?

    @Option(name: .customLong("sigma-high"), help: ArgumentHelp(
        "The stored DPM-Solver++ sampler's start of its rho-spaced levels, reached in one step from the largest, in the network's normalised units (default: the model's).",
        valueName: "level"))
    var sigmaHigh: Double?

    @Option(help: "Worker threads (default: the processor count).")
    var threads: Int?

    func validate() throws {
        guard out.hasSuffix(".sbim") else { throw ValidationError("--out must name a .sbim file") }
        if let cases, cases < 20 { throw ValidationError("--cases must be at least 20") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let samplerSteps, samplerSteps < 2 { throw ValidationError("--sampler-steps must be at least 2") }
        if sampler != nil, samplerSteps == nil { throw ValidationError("--sampler needs --sampler-steps") }
        try validateNoiseLevel(sigmaLow, option: "sigma-low", example: "0.02")
        try validateNoiseLevel(sigmaHigh, option: "sigma-high", example: "2.5")
    }

    func run() throws {
        let loaded = try ModelArchive.load(model)
        let seed = self.seed ?? loaded.manifest.provenance.seed
        let plan: CalibrationPlan
        if let simulations {
            let rows = try CalibrationSources.file(simulations, spec: loaded.model.spec)
            plan = try CalibrationSources.rows(rows, seed: seed, cases: cases,
                                               source: "held-out simulations \(URL(fileURLWithPath: simulations).lastPathComponent)", threads: threads)
        } else if let task = loaded.manifest.provenance.task {
            plan = try CalibrationSources.task(task, seed: seed, cases: cases, threads: threads)
        } else {
            throw SbiError(.usage, "\(loaded.path) was trained from a simulation file, so sbiwatch cannot simulate held-out cases for it",
                           hint: "give --simulations with simulations from the same simulator that the model was not trained on")
        }
        let newSampler = loaded.manifest.sampler.overriding(steps: samplerSteps, method: sampler, sigmaLow: sigmaLow, sigmaHigh: sigmaHigh)
        let calibrated = try TrainedArchive.calibrate(loaded, plan: plan, sampler: newSampler, command: canonicalCommand(seed: seed),
                                                      source: out, log: { stderrLine($0) })
        let digest = try ModelArchive.save(calibrated.data, to: out)
        for line in ModelCard.calibrationLines(calibrated.loaded.calibration) where !line.isEmpty { stderrLine(line) }
        print("\(out)@sha256:\(digest)")
    }

    func canonicalCommand(seed: UInt64) -> String {
        var c = "sbiwatch calibrate \(URL(fileURLWithPath: ModelArchive.pathPart(model)).lastPathComponent)"
        if let cases { c += " --cases \(cases)" }
        c += " --seed \(seed)"
        if let simulations { c += " --simulations \(URL(fileURLWithPath: simulations).lastPathComponent)" }
        if let sampler { c += " --sampler \(sampler.rawValue)" }
        if let samplerSteps { c += " --sampler-steps \(samplerSteps)" }
        if let sigmaLow { c += " --sigma-low \(sigmaLow)" }
        if let sigmaHigh { c += " --sigma-high \(sigmaHigh)" }
        return c + " --out \(URL(fileURLWithPath: out).lastPathComponent)"
    }
}
