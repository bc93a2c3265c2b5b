import ArgumentParser
import Foundation
import SbiArchive
import SbiCore
import SbiEval
import SbiModel
import SbiTasks
import SbiTraining

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure this machine: BLAS peak and network throughput, or accuracy against reference posteriors.")

    @Flag(help: "Print the figures as JSON (sorted keys).")
    var json = false

    @Option(help: "Seconds to spend measuring each throughput configuration.")
    var seconds: Double = 3

    @Option(name: .customLong("only"), help: "Measure only the throughput configurations whose name contains this text.")
    var only: String?

    @Option(help: "Worker threads for the network (default: the processor count).")
    var threads: Int?

    @Flag(help: "Train on each task and report the posterior C2ST against reference samples (sbibm MLP classifier, and the random forest of the published Simformer figures).")
    var accuracy = false

    @Option(parsing: .upToNextOption, help: "Tasks for --accuracy (default: all four benchmark tasks).")
    var tasks: [String] = TaskRegistry.benchmarkNames

    @Option(help: "Simulations per task for --accuracy.")
    var budget: Int = 10_000

    @Option(help: "Training steps for --accuracy (default: the training default).")
    var steps: Int?

    @Option(help: "Observations per task for --accuracy.")
    var observations: Int = 10

    @Option(help: "Posterior samples per observation for --accuracy.")
    var samples: Int = 10_000

    @Option(name: .customLong("sampler-steps"), help: "Sampling steps for --accuracy (default: the model's).")
    var samplerSteps: Int?

    @Option(name: .customLong("query-model"), help: "Time the SIRD query with this trained SIRD model and its sampler (default: an untrained large network, 50 SDE steps).")
    var queryModel: String?

    @Option(help: "Sampler for --accuracy: sde or ode (default: the model's).")
    var sampler: SamplerSettings.Method?

    @Option(help: "Attention mask for --accuracy training.")
    var mask: AttentionMaskKind = .undirected

    @Option(name: .customLong("models"), help: "Folder keeping the trained archives (TASK-BUDGET.sbim); existing ones are reused.")
    var modelsDir: String?

    @Option(help: ArgumentHelp("Report credible-interval coverage of this model on held-out simulations of its task.", valueName: "model"))
    var calibration: String?

    @Option(name: .customLong("held-out"), help: "Held-out simulations for --calibration.")
    var heldOut: Int = 200

    @Option(name: .customLong("calibration-samples"), help: "Posterior samples per held-out simulation for --calibration.")
    var calibrationSamples: Int = 200

    @Option(name: .customLong("per-series"), help: "Observation times per data series for --calibration.")
    var perSeries: Int = 10

    func validate() throws {
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        for t in tasks where !TaskRegistry.benchmarkNames.contains(t) {
            throw ValidationError("unknown task '\(t)' (choose from \(TaskRegistry.benchmarkNames.joined(separator: ", ")))")
        }
        guard observations >= 1, samples >= 10 else { throw ValidationError("--observations >= 1 and --samples >= 10 needed") }
        guard heldOut >= 1, calibrationSamples >= 10, perSeries >= 1 else {
            throw ValidationError("--held-out >= 1, --calibration-samples >= 10 and --per-series >= 1 needed")
        }
    }

    func run() throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        if let calibration {
            let loaded = try ModelArchive.load(calibration)
            guard let taskName = loaded.manifest.provenance.task else {
                throw SbiError(.usage, "\(loaded.path) was trained from a simulation file; --calibration needs a built-in task to simulate held-out cases")
            }
            let task = try TaskRegistry.task(named: taskName)
            var settings = loaded.manifest.sampler
            if let samplerSteps { settings.steps = samplerSteps }
            if let sampler { settings.method = sampler }
            let report = try Calibration.run(model: loaded.model, task: task, count: heldOut, samples: calibrationSamples,
                                             perSeries: perSeries, settings: settings, seed: 12345) { stderrLine($0) }
            if json {
                print(String(decoding: try enc.encode(report), as: UTF8.self))
            } else {
                print("calibration of \(loaded.path) (\(taskName)) on \(heldOut) held-out simulations, \(calibrationSamples) samples each:")
                for e in report.entries {
                    let name = e.name.padding(toLength: max(14, e.name.count), withPad: " ", startingAt: 0)
                    print("  \(name) " + String(format: "50%%: %.3f   90%%: %.3f   (%d cases)", e.coverage50, e.coverage90, e.cases))
                }
                print(String(format: "worst deviation from nominal: %.3f; %.0f s", report.worstDeviation, report.seconds))
            }
            return
        }
        if accuracy {
            let stop = StopRequests.install()
            var entries: [AccuracyEntry] = []
            for name in tasks {
                entries.append(try accuracyEntry(name, stop: stop))
                if !json { print(describe(entries.last!)) }
            }
            if json { print(String(decoding: try enc.encode(entries), as: UTF8.self)) }
            return
        }
        let report = ThroughputBench(seconds: seconds, threads: threads ?? BatchParallel.defaultThreads, only: only).run { line in
            stderrLine(line)
        }
        var query: QueryTimingEntry? = nil
        if only.map({ "sird_posterior_1000_samples_beta_100_points".contains($0) }) ?? true {
            stderrLine("timing a SIRD posterior query (1,000 samples, beta on 100 points, 20 observations per series)")
            var settings = SamplerSettings()
            var model: ScoreModel? = nil
            if let queryModel {
                let loaded = try ModelArchive.load(queryModel)
                model = loaded.model; settings = loaded.manifest.sampler
            }
            if let samplerSteps { settings.steps = samplerSteps }
            if let sampler { settings.method = sampler }
            query = try QueryTiming.sird(model: model, settings: settings, threads: threads)
        }
        if json {
            struct Combined: Encodable { var throughput: ThroughputReport; var query: QueryTimingEntry? }
            print(String(decoding: try enc.encode(Combined(throughput: report, query: query)), as: UTF8.self))
        } else {
            print(report.text, terminator: "")
            if let q = query {
                print(String(format: "%@: %.1f s for %d samples of %d tokens (%@ %d steps, %@)", q.name, q.seconds, q.samples,
                             q.tokens, q.sampler, q.samplerSteps, q.model))
            }
        }
    }

    func describe(_ e: AccuracyEntry) -> String {
        let pub = e.publishedC2st.map { String(format: "; published Simformer %.2f", $0) } ?? ""
        return String(format: "%@: C2ST %.3f (random forest %.3f%@) over %d observations; trained %d steps in %.0f s; %d samples in %.2f s (%.0f samples/s, %@ %d steps)",
                      e.task, e.c2stMean, e.c2stRandomForestMean, pub, e.observations, e.trainingSteps, e.trainingSeconds,
                      e.samplesPerObservation, e.samplingSeconds, e.samplesPerSecond, e.sampler, e.samplerSteps)
    }

    func accuracyEntry(_ name: String, stop: StopRequests) throws -> AccuracyEntry {
        let task = try TaskRegistry.task(named: name)
        var loaded: LoadedModel?
        var path: String?
        if let modelsDir {
            try FileManager.default.createDirectory(atPath: modelsDir, withIntermediateDirectories: true)
            path = "\(modelsDir)/\(name)-\(budget)-\(mask.rawValue)\(steps.map { "-\($0)" } ?? "").sbim"
            if FileManager.default.fileExists(atPath: path!) {
                loaded = try ModelArchive.load(path!)
                stderrLine("\(name): reusing \(path!)")
            }
        }
        if loaded == nil {
            let sims = task.simulate(count: budget, key: RandomKey(seed: 0).split(100))
            var config = TrainingConfig(steps: steps, seed: 0)
            config.threads = threads
            let settings = NetworkSettings(preset: .small, sde: .defaultVE, mask: mask)
            stderrLine("\(name): training on \(budget) simulations, \(config.resolvedSteps(simulations: budget)) steps")
            // with --models, the run is resumable like `train` (state in TASK-....checkpoint beside the archive)
            let policy = path.map { p in
                CheckpointPolicy(path: CheckpointPolicy.defaultPath(forModel: p), everySeconds: 600,
                                 stopRequested: { stop.requested }, log: { stderrLine("\(name): \($0)") })
            }
            func train() throws -> (ScoreModel, TrainingReport) {
                try Trainer.train(spec: task.spec, simulations: sims, settings: settings, config: config, checkpoint: policy) {
                    stderrLine("\(name): \($0.line)")
                }
            }
            let (model, report) = try policy.map { p in try stop.armed(checkpoint: p.path, train) } ?? train()
            let provenance = Provenance(
                task: name, simulationsSHA256: nil, simulations: budget, seed: 0,
                training: TrainingSummary(steps: report.steps, stepsPlanned: report.stepsPlanned, batchSize: config.batchSize,
                                          finalTrainLoss: report.finalTrainLoss, bestValidationLoss: report.bestValidationLoss,
                                          bestValidationStep: report.bestValidationStep, stoppedEarly: report.stoppedEarly,
                                          seconds: report.seconds),
                command: "sbiwatch train --task \(name) --budget \(budget) --seed 0\(steps.map { " --steps \($0)" } ?? "") --config small --sde ve --mask \(mask.rawValue) --out \(name).sbim",
                sbiwatchVersion: sbiwatchVersion)
            let data = try ModelArchive.encode(model, sampler: SamplerSettings.trainingDefault(for: settings.sde), provenance: provenance)
            if let path {
                try ModelArchive.save(data, to: path)
                if let policy { try? FileManager.default.removeItem(atPath: policy.path) }
            }
            loaded = try ModelArchive.decode(data, source: path ?? name, sha256: ModelArchive.sha256Hex(data))
        }
        let l = loaded!
        var settings = l.manifest.sampler
        if let samplerSteps { settings.steps = samplerSteps }
        if let sampler { settings.method = sampler }
        return try AccuracyBench.evaluate(model: l.model, task: task, trainingSteps: l.manifest.provenance.training.steps,
                                          trainingSeconds: l.manifest.provenance.training.seconds, simulations: budget,
                                          observations: observations, samples: samples, sampler: settings, seed: 0,
                                          threads: threads ?? BatchParallel.defaultThreads) {
            stderrLine($0)
        }
    }
}
