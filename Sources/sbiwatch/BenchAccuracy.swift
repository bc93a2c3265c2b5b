import ArgumentParser
import Foundation
import SbiArchive
import SbiCore
import SbiEval
import SbiModel
import SbiTasks
import SbiTraining

struct BenchAccuracy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accuracy",
        abstract: "Train on each benchmark task and report the posterior C2ST against reference samples (sbibm MLP classifier, and the random forest of the published Simformer figures).")

    @OptionGroup var output: BenchOutput
    @OptionGroup var threading: BenchThreads
    @OptionGroup var sampling: BenchSamplerOptions

    @Option(parsing: .upToNextOption, help: "Tasks (default: all four benchmark tasks).")
    var tasks: [String] = TaskRegistry.benchmarkNames

    @Option(help: "Simulations per task.")
    var budget: Int = 10_000

    @Option(help: "Training steps (default: the training default).")
    var steps: Int?

    @Option(help: "Observations per task.")
    var observations: Int = 10

    @Option(help: "Posterior samples per observation.")
    var samples: Int = 10_000

    @Option(help: "Attention mask for training.")
    var mask: AttentionMaskKind = .undirected

    @Option(parsing: .upToNextOption,
            help: ArgumentHelp("Samplers to compare on the same observations and references, each METHOD:STEPS, with :low=LEVEL (noise-level samplers), :high=LEVEL (dpmpp2m, dpmpp2m-sde) and :churn=C (edm) if wanted (e.g. sde:100 edm:9:churn=40 dpmpp2m-sde:12:low=0.05:high=2.5; default: the model's, or --sampler and --sampler-steps).",
                               valueName: "method:steps"))
    var samplers: [SamplerChoice] = []

    @Option(name: .customLong("bounded-parameters"), help: ArgumentHelp(
        "How parameters with a bounded prior support reach the network in training (as train's option): raw, logit or logit-functions; tasks without such a parameter train raw.",
        valueName: "raw|logit|logit-functions"))
    var boundedParameters: BoundedParameters = .raw

    @Option(name: .customLong("parametrisation"), help: ArgumentHelp(
        "The network's parametrisation in training (as train's option): noise or edm.",
        valueName: "noise|edm"))
    var parametrisation: Parametrisation = .noise

    @Option(name: .customLong("models"), help: "Folder keeping the trained archives (TASK-BUDGET-MASK[-STEPS][-logit][-edm].sbim); existing ones are reused.")
    var modelsDir: String?

    func validate() throws {
        for t in tasks where !TaskRegistry.benchmarkNames.contains(t) {
            throw ValidationError("unknown task '\(t)' (choose from \(TaskRegistry.benchmarkNames.joined(separator: ", ")))")
        }
        guard observations >= 1, samples >= 10 else { throw ValidationError("--observations >= 1 and --samples >= 10 needed") }
        guard budget >= 20 else { throw ValidationError("--budget must be at least 20") }
        if let steps, steps < 1 { throw ValidationError("--steps must be positive") }
    }

    func run() throws {
        let stop = StopRequests.install()
        var entries: [AccuracyEntry] = []
        for name in tasks {
            let taskEntries = try accuracyEntries(name, stop: stop)
            entries += taskEntries
            if !output.json { for entry in taskEntries { print(describe(entry)) } }
        }
        if output.json { try output.print(entries) { "" } }
    }

    func describe(_ e: AccuracyEntry) -> String {
        let pub = e.publishedC2st.map { String(format: "; published Simformer %.2f", $0) } ?? ""
        return String(format: "%@: C2ST %.3f (random forest %.3f%@) over %d observations; trained %d steps in %.0f s; %d samples in %.2f s (%.0f samples/s, %@ %d steps, %d network evaluations)",
                      e.task, e.c2stMean, e.c2stRandomForestMean, pub, e.observations, e.trainingSteps, e.trainingSeconds,
                      e.samplesPerObservation, e.samplingSeconds, e.samplesPerSecond, e.sampler, e.samplerSteps, e.networkEvaluations)
    }

    /// Where --models keeps the archive of a task, or nil without --models.
    func archivePath(_ task: any SimulationTask) throws -> String? {
        guard let modelsDir else { return nil }
        try FileManager.default.createDirectory(atPath: modelsDir, withIntermediateDirectories: true)
        let logit = !usesLogit(task) ? "" : boundedParameters == .logit ? "-logit" : "-logitfn", edm = parametrisation == .edm ? "-edm" : ""
        return "\(modelsDir)/\(task.name)-\(budget)-\(mask.rawValue)\(steps.map { "-\($0)" } ?? "")\(logit)\(edm).sbim"
    }

    /// --bounded-parameters logit or logit-functions, for a task that has a parameter it transforms.
    func usesLogit(_ task: any SimulationTask) -> Bool {
        boundedParameters.bounds(task.spec)?.contains { $0 != nil } ?? false
    }

    func accuracyEntries(_ name: String, stop: StopRequests) throws -> [AccuracyEntry] {
        let task = try TaskRegistry.task(named: name)
        let path = try archivePath(task)
        let loaded: LoadedModel
        if let path, FileManager.default.fileExists(atPath: path) {
            loaded = try ModelArchive.load(path)
            stderrLine("\(name): reusing \(path)")
        } else {
            loaded = try train(task, path: path, stop: stop)
        }
        let provenance = loaded.manifest.provenance
        return try AccuracyBench.evaluate(model: loaded.model, task: task, trainingSteps: provenance.training.steps,
                                          trainingSeconds: provenance.training.seconds, simulations: budget,
                                          observations: observations, samples: samples,
                                          samplers: samplers.isEmpty ? [sampling.applied(to: loaded.manifest.sampler)]
                                                                     : samplers.map { $0.settings(sigmaLow: sampling.sigmaLow) },
                                          seed: 0, threads: threading.threads ?? BatchParallel.defaultThreads) {
            stderrLine($0)
        }
    }

    /// Trains a small network on `budget` simulations of the task (seed 0); with --models the run is
    /// resumable like `train` (state in TASK-....checkpoint beside the archive) and the archive kept.
    func train(_ task: any SimulationTask, path: String?, stop: StopRequests) throws -> LoadedModel {
        let name = task.name
        let sims = task.simulate(count: budget, key: RandomKey(seed: 0).split(100))
        var config = TrainingConfig(steps: steps, seed: 0)
        config.threads = threading.threads
        if usesLogit(task) { config.boundedParameters = boundedParameters }
        let settings = NetworkSettings(preset: .small, sde: .defaultVE, mask: mask, parametrisation: parametrisation)
        stderrLine("\(name): training on \(budget) simulations, \(config.resolvedSteps(simulations: budget)) steps")
        let policy = path.map { p in
            CheckpointPolicy(path: CheckpointPolicy.defaultPath(forModel: p), everySeconds: 600,
                             stopRequested: { stop.requested }, log: { stderrLine("\(name): \($0)") })
        }
        let origin = TrainingOrigin(task: name, seed: 0, command: "sbiwatch train --task \(name) --budget \(budget) --seed 0\(steps.map { " --steps \($0)" } ?? "") --config small --sde ve --mask \(mask.rawValue)\(usesLogit(task) ? " --bounded-parameters \(boundedParameters.rawValue)" : "")\(parametrisation == .edm ? " --parametrisation edm" : "") --out \(name).sbim")
        func run() throws -> TrainedArchive {
            try TrainedArchive.train(spec: task.spec, simulations: sims, settings: settings, config: config,
                                     sampler: SamplerSettings.trainingDefault(for: settings.sde), origin: origin, source: path ?? name,
                                     checkpoint: policy) { stderrLine("\(name): \($0.line)") }
        }
        let trained = try policy.map { p in try stop.armed(checkpoint: p.path, run) } ?? run()
        if let path {
            try ModelArchive.save(trained.data, to: path)
            if let policy { try? FileManager.default.removeItem(atPath: policy.path) }
        }
        return trained.loaded
    }
}

/// One sampler of a comparison: METHOD:STEPS, then optionally low=LEVEL (the noise-level samplers'
/// last level before 0), high=LEVEL (the DPM-Solver++ samplers' first rho-spaced level) and churn=C
/// (edm); edm:STEPS:CHURN is churn=CHURN.
struct SamplerChoice: ExpressibleByArgument {
    var settings: SamplerSettings
    /// Whether the choice set its own lowest level (else --sigma-low applies).
    var setsSigmaLow = false

    init?(argument: String) {
        let parts = argument.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (2...5).contains(parts.count), let method = SamplerSettings.Method(rawValue: parts[0]),
              let steps = Int(parts[1]) else { return nil }
        settings = SamplerSettings(method: method, steps: steps)
        guard steps >= settings.minimumSteps else { return nil }
        for part in parts.dropFirst(2) {
            let (key, text) = part.contains("=") ? (String(part.prefix { $0 != "=" }), String(part.drop { $0 != "=" }.dropFirst()))
                                                 : ("churn", part)
            guard settings.usesNoiseLevels, let value = Double(text), value.isFinite else { return nil }
            switch key {
            case "churn" where method == .edm && value >= 0: settings.churn = value
            case "low" where value > 0: settings.sigmaLow = value; setsSigmaLow = true
            case "high" where value > 0 && settings.readsSigmaHigh: settings.sigmaHigh = value
            default: return nil
            }
        }
    }

    /// The settings, with `sigmaLow` (--sigma-low) unless the choice set its own.
    func settings(sigmaLow: Double?) -> SamplerSettings {
        setsSigmaLow ? settings : settings.overriding(sigmaLow: sigmaLow)
    }
}
