import ArgumentParser
import Foundation
import SbiCore
import SbiModel

/// `sbiwatch bench SUBCOMMAND`: one benchmark per subcommand, each with its own options.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure this machine and the models: throughput, query time, accuracy, calibration, misspecification, spool throughput, dense grids, training speed.",
        discussion: "Figures go to standard output (text, or JSON with --json), progress to standard error. Speed is measured in a release build (`make bench`).",
        subcommands: [BenchThroughput.self, BenchQuery.self, BenchAccuracy.self, BenchCalibration.self, BenchMisspecification.self, BenchSpool.self, BenchDenseGrid.self, BenchTraining.self])
}

/// --json, shared by every bench subcommand.
struct BenchOutput: ParsableArguments {
    @Flag(help: "Print the figures as JSON (sorted keys).")
    var json = false

    func print<T: Encodable>(_ value: T, text: () -> String) throws {
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys, .prettyPrinted]
            Swift.print(String(decoding: try enc.encode(value), as: UTF8.self))
        } else {
            Swift.print(text(), terminator: "")
        }
    }
}

/// --sampler-steps and --sampler, shared by the benchmarks that sample a model.
struct BenchSamplerOptions: ParsableArguments {
    @Option(name: .customLong("sampler-steps"), help: "Sampling steps (default: the model's).")
    var samplerSteps: Int?

    @Option(help: "Sampler: sde, ode, edm, dpmpp2m or dpmpp2m-sde (default: the model's).")
    var sampler: SamplerSettings.Method?

    @Option(name: .customLong("sigma-low"), help: ArgumentHelp(
        "The noise-level samplers' (edm, dpmpp2m, dpmpp2m-sde) last level before 0, in the network's normalised units (default: the model's; 0.002 unless stored otherwise).",
        valueName: "level"))
    var sigmaLow: Double?

    @Option(name: .customLong("sigma-high"), help: ArgumentHelp(
        "The noise-level samplers' first level, in the network's normalised units (default: the model's; the SDE's largest, 15 for VE, unless stored otherwise).",
        valueName: "level"))
    var sigmaHigh: Double?

    func validate() throws {
        if let samplerSteps, samplerSteps < 2 { throw ValidationError("--sampler-steps must be at least 2") }
        try validateNoiseLevel(sigmaLow, option: "sigma-low", example: "0.02")
        try validateNoiseLevel(sigmaHigh, option: "sigma-high", example: "2.5")
    }

    func applied(to settings: SamplerSettings) -> SamplerSettings {
        settings.overriding(steps: samplerSteps, method: sampler, sigmaLow: sigmaLow, sigmaHigh: sigmaHigh)
    }
}

/// --sigma-low and --sigma-high must be positive, finite levels.
func validateNoiseLevel(_ level: Double?, option: String, example: String) throws {
    if let level, !(level > 0 && level.isFinite) {
        throw ValidationError("--\(option) must be a positive number (a noise level, e.g. \(example))")
    }
}

/// --threads, shared by the benchmarks.
struct BenchThreads: ParsableArguments {
    @Option(help: "Worker threads for the network (default: the processor count).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }
}
