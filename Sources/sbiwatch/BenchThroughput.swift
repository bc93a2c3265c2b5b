import ArgumentParser
import Foundation
import SbiArchive
import SbiCore
import SbiEval
import SbiModel
import SbiTasks
import SbiTraining

struct BenchThroughput: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "throughput",
        abstract: "Single-core sgemm peak and the network's training and sampling throughput, in one run.")

    @OptionGroup var output: BenchOutput
    @OptionGroup var threading: BenchThreads

    @Option(help: "Seconds to spend measuring each configuration.")
    var seconds: Double = 3

    @Option(name: .customLong("only"), help: "Measure only the configurations whose name contains this text.")
    var only: String?

    @Option(help: ArgumentHelp(
        "Attention's kernel build to measure: avx2, avx512 (CPUs with AVX-512) or both, one after the other in this run (default: the one this CPU runs).",
        valueName: "kernels"))
    var kernels: String?

    /// The kernel paths --kernels names, each available on this CPU.
    func kernelPaths() throws -> [KernelPath] {
        guard let kernels else { return [KernelPath.current] }
        var paths: [KernelPath] = [.avx2, .avx512]
        if kernels != "both" {
            guard let one = KernelPath(rawValue: kernels) else {
                throw ValidationError("--kernels must be avx2, avx512 or both, not '\(kernels)'")
            }
            paths = [one]
        }
        for p in paths where !p.isAvailable {
            throw ValidationError("--kernels \(kernels): this CPU has no AVX-512 (avx512f, cd, bw, dq and vl); measure with --kernels avx2")
        }
        return paths
    }

    func validate() throws {
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        _ = try kernelPaths()
    }

    func run() throws {
        let bench = ThroughputBench(seconds: seconds, threads: threading.threads ?? BatchParallel.defaultThreads, only: only,
                                    kernelPaths: try kernelPaths())
        let report = bench.run { line in
            stderrLine(line)
        }
        try output.print(report) { report.text }
    }
}

struct BenchQuery: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Time a SIRD posterior query: 1,000 samples, beta on 100 points, 20 observations per series.")

    @OptionGroup var output: BenchOutput
    @OptionGroup var threading: BenchThreads
    @OptionGroup var sampling: BenchSamplerOptions

    @Option(help: ArgumentHelp("A trained SIRD model and its sampler (default: an untrained large network, 50 SDE steps).", valueName: "model"))
    var model: String?

    @Option(help: ArgumentHelp("How beta's 100 points are answered: direct (up to the model's trained density) or interpolated between 20 support times (default: as a file's query is).", valueName: "method"))
    var method: QueryMethod?

    @Option(help: ArgumentHelp("Time this many files' queries (one simulation each, the same observation times) one after another and then sampled as one batch, instead of one query.", valueName: "count"))
    var files: Int = 1

    func validate() throws {
        guard (1...64).contains(files) else {
            throw ValidationError("--files \(files): give 1 (one query) to 64 files")
        }
    }

    func run() throws {
        let loaded = try model.map { try ModelArchive.load($0) }
        let settings = sampling.applied(to: loaded?.manifest.sampler ?? SamplerSettings())
        if method == .direct, let model, let beta = loaded?.model.spec.variables.first(where: { $0.name == "beta" }),
           let trained = beta.time?.maxPoints, trained < 100 {
            throw SbiError(.usage, "--method direct asks \(model) for beta(t) on 100 points directly, but it answers at most \(trained) directly (it was trained with up to \(trained) times per variable)",
                           hint: "leave out --method direct (the grid is then interpolated), or time a model trained with up to 100 times per variable")
        }
        if files > 1 { return try runBatch(loaded?.model, settings) }
        stderrLine("timing a SIRD posterior query (1,000 samples, beta on 100 points, 20 observations per series)")
        let q = try QueryTiming.sird(model: loaded?.model, settings: settings, threads: threading.threads, method: method)
        let answered = q.method == .direct ? "beta answered directly" : "beta interpolated between \(q.supportTimes) support times"
        try output.print(q) {
            String(format: "%@: %.1f s for %d samples of %d tokens (%@; %@ %d steps, %d network evaluations, %@)\n", q.name, q.seconds,
                   q.samples, q.tokens, answered, q.sampler, q.samplerSteps, q.networkEvaluations, q.model)
        }
    }

    func runBatch(_ model: ScoreModel?, _ settings: SamplerSettings) throws {
        stderrLine("timing \(files) SIRD posterior queries (1,000 samples each) one after another, then as one batch")
        let b = try QueryTiming.sirdBatch(model: model, settings: settings, threads: threading.threads,
                                          files: files, method: method, progress: { stderrLine($0) })
        try output.print(b) {
            String(format: "%d files of %d samples (%d tokens): %.2f s one after another, %.2f s as one batch (%.3fx)\n",
                   b.files, b.samplesPerFile, b.tokens, b.separateSeconds, b.batchedSeconds, b.speedup)
        }
    }
}

struct BenchTraining: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "training",
        abstract: "Optimiser steps per second of a real training run of a built-in task, at one or more token densities (--max-points), in one run.")

    @OptionGroup var output: BenchOutput
    @OptionGroup var threading: BenchThreads

    @Option(help: "Built-in simulator (\(TaskRegistry.allNames.joined(separator: ", "))).")
    var task: String = "sird"

    @Option(name: .customLong("max-points"), parsing: .upToNextOption, help: "Most tokens per time-indexed variable, one measurement each (default: the task's own).")
    var maxPoints: [Int] = []

    @Option(help: "Simulations to train on (the rate does not depend on it).")
    var budget: Int = 1000

    @Option(help: "Timed steps per measurement (after 2 untimed ones).")
    var steps: Int = 20

    @Option(name: .customLong("planned-steps"), help: "Steps of the full run whose duration is extrapolated.")
    var plannedSteps: Int = 20_000

    @Option(name: .customLong("batch-size"), help: "Examples per step.")
    var batchSize: Int = 256

    @Option(name: .customLong("config"), help: "Network size: small or large.")
    var preset: TransformerConfig.Preset = .large

    func validate() throws {
        guard budget >= 20, steps >= 1, batchSize >= 1, plannedSteps >= 1 else {
            throw ValidationError("--budget >= 20, --steps, --batch-size and --planned-steps >= 1 needed")
        }
        if maxPoints.contains(where: { $0 < 1 }) { throw ValidationError("--max-points must be at least 1") }
    }

    func run() throws {
        let simTask = try TaskRegistry.task(named: task)
        let rows = simTask.simulate(count: budget, key: RandomKey(seed: 1))
        var config = TrainingConfig(steps: nil, seed: 1)
        config.batchSize = batchSize
        config.threads = threading.threads
        var entries: [TrainingTimingEntry] = []
        for mp in maxPoints.isEmpty ? [nil] : maxPoints.map(Optional.some) {
            stderrLine("timing \(steps) steps of \(task) at max points \(mp.map(String.init) ?? "(the task's)")")
            entries.append(try TrainingTiming.measure(spec: simTask.spec, simulations: rows, maxPoints: mp,
                                                      settings: NetworkSettings(preset: preset), config: config,
                                                      steps: steps, plannedSteps: plannedSteps))
        }
        try output.print(entries) {
            entries.map { e in
                let ratio = entries[0].stepsPerSecond / e.stepsPerSecond
                return "\(task) max points \(e.maxPoints.map(String.init) ?? "-"): \(fmt(e.meanTokens, 1)) tokens per example on average (at most \(e.maxTokens)), \(e.examplesPerChunk) per chunk: \(fmt(e.stepsPerSecond, 2)) steps/s, \(fmt(ratio, 2))x the time of the first, \(fmt(e.hoursForPlannedSteps, 2)) h for \(plannedSteps) steps\n"
            }.joined()
        }
    }
}
