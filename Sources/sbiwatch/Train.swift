import ArgumentParser
import Foundation
import SbiArchive
import SbiChecks
import SbiCore
import SbiModel
import SbiTasks
import SbiTraining

extension TransformerConfig.Preset: ExpressibleByArgument {}
extension AttentionMaskKind: ExpressibleByArgument {}
extension SamplerSettings.Method: ExpressibleByArgument {}
extension SeriesNoise: ExpressibleByArgument {}
extension BoundedParameters: ExpressibleByArgument {}
extension FunctionTokens: ExpressibleByArgument {}
extension LossWeights: ExpressibleByArgument {}
extension Parametrisation: ExpressibleByArgument {}

enum SDEChoice: String, ExpressibleByArgument, CaseIterable {
    case ve, vp
    var sde: SDE { self == .ve ? .defaultVE : .defaultVP }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train an all-conditional score model and write it as a pinned model archive.")

    @Option(help: "Built-in simulator to train on (\(TaskRegistry.allNames.joined(separator: ", "))).")
    var task: String?

    @Option(help: ArgumentHelp("A NetCDF training set written by any simulator (layout: man sbiwatch, TRAINING SETS).", valueName: "sims.nc"))
    var simulations: String?

    @Option(help: "Number of simulations (with --task).")
    var budget: Int = 10_000

    @Option(help: "Where to write the model archive (.sbim).")
    var out: String

    @Option(help: "Seed of everything random: simulations, initial weights, batches.")
    var seed: UInt64 = 0

    @Option(help: "Optimiser steps (default: clip(3 x budget, 5000, 100000)).")
    var steps: Int?

    @Option(name: .customLong("batch-size"), help: "Examples per step.")
    var batchSize: Int = 1000

    @Option(name: .customLong("config"), help: "Network size: small or large.")
    var preset: TransformerConfig.Preset = .small

    @Option(help: "Diffusion: ve or vp.")
    var sde: SDEChoice = .ve

    @Option(help: "Attention mask: dense, undirected or directed (recomputed per condition mask).")
    var mask: AttentionMaskKind = .undirected

    @Option(name: .customLong("sampler-steps"), help: "Default number of sampling steps stored with the model (default: 24 for VE, 250 for VP).")
    var samplerSteps: Int?

    @Option(help: "Default sampler stored with the model: sde, ode, edm, dpmpp2m or dpmpp2m-sde (default: dpmpp2m-sde for VE, sde for VP; sde alone takes 100 steps for VE, others need --sampler-steps).")
    var sampler: SamplerSettings.Method?

    @Option(help: "Worker threads (default: the processor count).")
    var threads: Int?

    @Option(help: ArgumentHelp("Where the run saves its state to continue after an interruption (default: OUT with .checkpoint for .sbim).", valueName: "path"))
    var checkpoint: String?

    @Option(name: .customLong("checkpoint-every"), help: "Save the run's state at least this often (seconds); SIGINT/SIGTERM also save it.")
    var checkpointEvery: Double = 600

    @Option(name: .customLong("max-points"), help: ArgumentHelp(
        "Most tokens per time-indexed variable in a training example, and so the densest grid the model answers directly (default: the task's or training set's; at most its grid).",
        valueName: "n"))
    var maxPoints: Int?

    @Option(name: .customLong("series-noise"), help: ArgumentHelp(
        "How a data series' value at a time between two grid points of the simulations is made in training: restored (interpolated, with the observation noise the average loses drawn afresh, so every time scatters by the declared noise) or interpolated (plain interpolation, as models trained before 2026-12-06 were: their noise comes out about 0.82 of the declared sd).",
        valueName: "restored|interpolated"))
    var seriesNoise: SeriesNoise = .restored

    @Option(name: .customLong("function-tokens"), help: ArgumentHelp(
        "How many tokens a function-valued parameter gets in a training example: log-uniform (on 1 to max points, as every series) or half-dense (half the examples so, half uniform on max points / 2 to max points, so that queries on the function's whole grid are as common in training as sparse ones).",
        valueName: "log-uniform|half-dense"))
    var functionTokens: FunctionTokens = .logUniform

    @Option(name: .customLong("forecast-masks"), help: ArgumentHelp(
        "Share of training examples (0 to 0.5) whose condition mask is a forecast's: every data value up to a cut (a uniform 20-100% of the time axis) observed, everything else latent, as a file observed up to today that asks for forecasts and for a function of time over the whole domain; the rest draw the method's mixture (default 0: the mixture alone).",
        valueName: "share"))
    var forecastMasks: Double = 0

    @Option(name: .customLong("loss-weights"), help: ArgumentHelp(
        "How an example's latent tokens share its loss: tokens (every token alike, the method's, the default) or sqrt-variables (a token of a variable with n latent tokens in the example weighs 1/sqrt(n), rescaled to the same total, so scalar parameters among long series and dense functions are not drowned out).",
        valueName: "tokens|sqrt-variables"))
    var lossWeights: LossWeights = .tokens

    @Option(name: .customLong("bounded-parameters"), help: ArgumentHelp(
        "How a parameter with a bounded prior support reaches the network: raw (z-scored, the default), logit (the logit of its place in the support, so samples stay inside it and mass piled against a bound, as sird's beta(t) near 0 and 1, becomes a smooth tail) or logit-functions (the logit for function-valued parameters only, bounded scalars raw).",
        valueName: "raw|logit|logit-functions"))
    var boundedParameters: BoundedParameters = .raw

    @Option(name: .customLong("parametrisation"), help: ArgumentHelp(
        "How the network's output becomes the score: noise (the method's: it estimates the added noise, the default) or edm (Karras et al. 2022's preconditioning: inputs scaled to unit variance, a denoiser that mixes the input and the output by the noise level, a loss of unit scale at every level; VE only).",
        valueName: "noise|edm"))
    var parametrisation: Parametrisation = .noise

    @Option(name: .customLong("init"), help: ArgumentHelp(
        "Start from this model's weights instead of fresh ones (fine-tuning): an archive of the same variables and network (PATH or PATH@sha256:HEX; max points and declared observation noise may differ); its own train commands are recorded before this one.",
        valueName: "MODEL.sbim"))
    var initial: String?

    @Option(name: .customLong("learning-rate"), help: ArgumentHelp(
        "Peak learning rate of Adam (default 0.001; it decays linearly to 1e-6 over the second half). Fine-tuning with --init wants less, e.g. 0.0002.",
        valueName: "rate"))
    var learningRate: Float?

    @Option(name: .customLong("calibration-cases"), help: ArgumentHelp(
        "Held-out simulations of the calibration pass after training (default: what fits in 10% of the training time, 20 to 1000; 0 skips it).",
        valueName: "n"))
    var calibrationCases: Int?

    func validate() throws {
        guard (task == nil) != (simulations == nil) else { throw ValidationError("give either --task or --simulations") }
        guard budget >= 20 else { throw ValidationError("--budget must be at least 20") }
        if let steps, steps < 1 { throw ValidationError("--steps must be positive") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be positive") }
        guard out.hasSuffix(".sbim") else { throw ValidationError("--out must name a .sbim file") }
        if let samplerSteps, samplerSteps < 2 { throw ValidationError("--sampler-steps must be at least 2") }
        if let sampler, sampler != .sde, sampler != SamplerSettings.trainingDefault(for: sde.sde).method, samplerSteps == nil {
            throw ValidationError("--sampler \(sampler.rawValue) needs --sampler-steps (its steps mean something else than the SDE's)")
        }
        if parametrisation == .edm, sde == .vp { throw ValidationError("--parametrisation edm needs --sde ve") }
        guard checkpointEvery > 0 else { throw ValidationError("--checkpoint-every must be positive") }
        guard (0...0.5).contains(forecastMasks) else { throw ValidationError("--forecast-masks \(forecastMasks): give a share from 0 to 0.5") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let maxPoints, maxPoints < 1 { throw ValidationError("--max-points must be at least 1") }
        if let learningRate, !(learningRate > 0 && learningRate <= 1) { throw ValidationError("--learning-rate must be in (0, 1]") }
        if let calibrationCases, calibrationCases < 0 || (1..<20).contains(calibrationCases) {
            throw ValidationError("--calibration-cases must be 0 (skip) or at least 20")
        }
    }

    var checkpointPath: String { checkpoint ?? CheckpointPolicy.defaultPath(forModel: out) }

    /// The checkpoint must be a file of its own, in a folder that can be written (checked before
    /// hours of training, not at the first save).
    func checkCheckpointPath() throws {
        let resolved = URL(fileURLWithPath: checkpointPath).standardizedFileURL.path
        for (other, what) in [(out, "--out"), (simulations, "--simulations")] {
            if let other, URL(fileURLWithPath: other).standardizedFileURL.path == resolved {
                throw SbiError(.usage, "--checkpoint \(checkpointPath) is the same file as \(what)",
                               hint: "give --checkpoint a path of its own, e.g. \(CheckpointPolicy.defaultPath(forModel: out))")
            }
        }
        let dir = URL(fileURLWithPath: resolved).deletingLastPathComponent().path
        guard access(dir, W_OK) == 0 else {
            throw SbiError(.cannotCreate, "cannot write the training checkpoint into \(dir)",
                           hint: "create the folder or make it writable, or give --checkpoint another path")
        }
    }

    /// The default sampler stored with the model: --sampler and --sampler-steps over the training default.
    var resolvedSampler: SamplerSettings {
        let base = SamplerSettings.trainingDefault(for: sde.sde)
        var s = sampler.map { $0 == base.method ? base : $0 == .sde ? SamplerSettings.sdeDefault(for: sde.sde) : SamplerSettings(method: $0, steps: base.steps) } ?? base
        if let samplerSteps { s.steps = samplerSteps }
        return s
    }

    /// The canonical command line that rebuilds this model (written into the model card).
    /// `--series-noise` appears when the simulations have a data series with declared noise (where it
    /// matters).
    func canonicalCommand(spec: ModelSpec) -> String {
        var c = "sbiwatch train"
        if let task { c += " --task \(task) --budget \(budget)" }
        if let simulations { c += " --simulations \(URL(fileURLWithPath: simulations).lastPathComponent)" }
        c += " --seed \(seed)"
        if let steps { c += " --steps \(steps)" }
        if batchSize != 1000 { c += " --batch-size \(batchSize)" }
        if let maxPoints { c += " --max-points \(maxPoints)" }
        if spec.variables.contains(where: { $0.kind == .data && $0.time != nil && ($0.noise?.std ?? 0) > 0 }) {
            c += " --series-noise \(seriesNoise.rawValue)"
        }
        if functionTokens != .logUniform { c += " --function-tokens \(functionTokens.rawValue)" }
        if forecastMasks > 0 { c += " --forecast-masks \(forecastMasks)" }
        if boundedParameters != .raw { c += " --bounded-parameters \(boundedParameters.rawValue)" }
        if lossWeights != .tokens { c += " --loss-weights \(lossWeights.rawValue)" }
        c += " --config \(preset.rawValue) --sde \(sde.rawValue) --mask \(mask.rawValue)"
        if parametrisation != .noise { c += " --parametrisation \(parametrisation.rawValue)" }
        if let initial { c += " --init \(URL(fileURLWithPath: ModelArchive.pathPart(initial)).lastPathComponent)" }
        if let learningRate { c += " --learning-rate \(learningRate)" }
        // the sampler as resolved, so the command rebuilds the same archive whatever later defaults are
        c += " --sampler \(resolvedSampler.method.rawValue) --sampler-steps \(resolvedSampler.steps)"
        if let calibrationCases { c += " --calibration-cases \(calibrationCases)" }
        return c + " --out \(URL(fileURLWithPath: out).lastPathComponent)"
    }

    func run() throws {
        let (given, all, fileDigest) = try readSimulations()
        let spec = try maxPoints.map(given.cappingMaxPoints) ?? given
        if functionTokens == .halfDense, !spec.variables.contains(where: \.isFunctionOfTime) {
            throw SbiError(.usage, "--function-tokens half-dense: the model has no function-valued parameter",
                           hint: "leave out --function-tokens (it only changes how a function of time such as sird's beta(t) is drawn)")
        }
        if lossWeights == .sqrtVariables, !spec.hasTimeIndexed {
            throw SbiError(.usage, "--loss-weights sqrt-variables: every variable of the model has one token per example, so every weight would be 1",
                           hint: "leave out --loss-weights (it shares the loss among variables with many tokens: time series and functions of time)")
        }
        if forecastMasks > 0, !spec.variables.contains(where: { $0.kind == .data && $0.time != nil }) {
            throw SbiError(.usage, "--forecast-masks: the model has no data series to forecast",
                           hint: "leave out --forecast-masks (it only adds condition masks that cut time series)")
        }
        let (sims, calibration) = try calibrationPlan(all)
        var config = TrainingConfig(steps: steps, seed: seed)
        config.batchSize = batchSize
        config.threads = threads
        config.seriesNoise = seriesNoise
        config.functionTokens = functionTokens == .logUniform ? nil : functionTokens
        config.forecastMasks = forecastMasks > 0 ? forecastMasks : nil
        config.boundedParameters = boundedParameters == .raw ? nil : boundedParameters
        config.lossWeights = lossWeights == .tokens ? nil : lossWeights
        if let bounds = boundedParameters.bounds(spec), !bounds.contains(where: { $0 != nil }) {
            let which = boundedParameters == .logit ? "parameter" : "function-valued parameter"
            throw SbiError(.usage, "--bounded-parameters \(boundedParameters.rawValue): no \(which) of the model has a bounded prior support",
                           hint: "leave out --bounded-parameters (a training set declares a support with a parameter's valid_range)")
        }
        if let learningRate { config.learningRate = learningRate }
        let settings = NetworkSettings(preset: preset, sde: sde.sde, mask: mask, parametrisation: parametrisation)
        let start = try initial.map { try initialWeights($0, spec: spec, settings: settings) }
        config.initialWeightsSHA256 = start?.sha256
        stderrLine("training \(preset.rawValue) network, \(config.resolvedSteps(simulations: sims.count)) steps of \(batchSize)")
        try checkCheckpointPath()
        let stop = StopRequests.install()
        let policy = CheckpointPolicy(path: checkpointPath, everySeconds: checkpointEvery,
                                      stopRequested: { stop.requested }, log: { stderrLine($0) })
        let sampler = resolvedSampler
        let origin = TrainingOrigin(task: task, simulationsSHA256: fileDigest, seed: seed, command: canonicalCommand(spec: spec),
                                    initialCommands: start?.manifest.provenance.trainCommands)
        let trained = try stop.armed(checkpoint: checkpointPath) {
            try TrainedArchive.train(spec: spec, simulations: sims, settings: settings, config: config, sampler: sampler,
                                     origin: origin, source: out, initial: start?.model.params, calibration: calibration, checkpoint: policy,
                                     progress: { stderrLine($0.line) }, log: { stderrLine($0) })
        }
        let digest = try ModelArchive.save(trained.data, to: out)
        try? FileManager.default.removeItem(atPath: checkpointPath)
        let training = trained.loaded.manifest.provenance.training
        stderrLine("trained in \(Int(training.seconds.rounded())) s; best validation loss \(training.bestValidationLoss) at step \(training.bestValidationStep)")
        for line in ModelCard.calibrationLines(trained.loaded.calibration) where !line.isEmpty { stderrLine(line) }
        print("\(out)@sha256:\(digest)")
    }

    /// The archive of --init, refused unless its network takes this run's variables and settings.
    func initialWeights(_ reference: String, spec: ModelSpec, settings: NetworkSettings) throws -> LoadedModel {
        let loaded = try ModelArchive.load(reference)
        let theirs = loaded.manifest.spec, name = loaded.path
        // max points and declared noise may change (e.g. a model trained on 20 times per variable
        // fine-tuned towards dense grids): they shape the training examples, not the network
        let comparable = theirs.withExampleSettings(of: spec)
        guard comparable == spec else {
            let diff = zip(comparable.variables, spec.variables).first { $0 != $1 }.map { " (\($0.0.name) differs, e.g. its time axis)" } ?? ""
            throw SbiError(.usage, "--init \(name) models other variables than this run\(diff)",
                           hint: "fine-tune a model of the same task or training set")
        }
        for (mine, old) in zip(spec.variables, theirs.variables) {
            if let to = mine.time?.maxPoints, let from = old.time?.maxPoints, to != from {
                stderrLine("--init: \(mine.name) was trained with up to \(from) times, this run draws up to \(to)")
            }
            if mine.noise != old.noise {
                let says = { (n: ObservationNoise?) in n.map { "\($0.kind.rawValue) \($0.std)" } ?? "none" }
                stderrLine("--init: \(mine.name)'s declared observation noise was \(says(old.noise)), this run's is \(says(mine.noise))")
            }
        }
        guard loaded.model.settings.preset == settings.preset, loaded.model.settings.sde == settings.sde,
              loaded.model.settings.mask == settings.mask else {
            throw SbiError(.usage, "--init \(name) is a \(loaded.model.settings.preset.rawValue) network with \(loaded.model.settings.mask.rawValue) mask, not what this run trains",
                           hint: "give the same --config, --sde and --mask as the model's own train command")
        }
        let theirOutput = loaded.model.settings.resolvedParametrisation
        guard theirOutput == parametrisation else {
            throw SbiError(.usage, "--init \(name) was trained with --parametrisation \(theirOutput.rawValue), this run with \(parametrisation.rawValue)",
                           hint: "give --parametrisation \(theirOutput.rawValue): the network's output must mean what it meant")
        }
        let theirBounds = loaded.model.normalization.logit
        guard theirBounds == boundedParameters.bounds(spec) else {
            let theirs = BoundedParameters.allCases.first { $0.bounds(spec) == theirBounds }?.rawValue ?? "another transform"
            throw SbiError(.usage, "--init \(name) was trained with --bounded-parameters \(theirs), this run with \(boundedParameters.rawValue)",
                           hint: "give --bounded-parameters \(theirs): the network's inputs must mean what they meant")
        }
        guard loaded.model.params.layout == Transformer(config: ScoreModel.transformerConfig(spec: spec, settings: settings)).layout else {
            throw SbiError(.usage, "--init \(name) has a network of another shape than this run's",
                           hint: "fine-tune a model trained by this sbiwatch version's train command with the same settings")
        }
        return loaded
    }

    /// The training rows and the calibration pass: for --task, fresh simulations with their own
    /// seeds; for --simulations, a random split held out of training (and so of early stopping).
    func calibrationPlan(_ all: [[Double]]) throws -> ([[Double]], CalibrationPlan?) {
        if calibrationCases == 0 { return (all, nil) }
        if let task { return (all, try CalibrationSources.task(task, seed: seed, cases: calibrationCases, threads: threads)) }
        let split = CalibrationSplit(count: all.count, seed: seed)
        guard split.cases.count >= 20 else {
            throw SbiError(.usage, "\(all.count) simulations are too few to hold out a calibration split (at least 200 needed)",
                           hint: "give more simulations, or skip calibration with --calibration-cases 0")
        }
        stderrLine("holding out \(split.references.count + split.cases.count) of \(all.count) simulations for calibration")
        let source = "a held-out split of \(URL(fileURLWithPath: simulations!).lastPathComponent)"
        return (split.training.map { all[$0] },
                try CalibrationSources.rows((split.references + split.cases).map { all[$0] }, seed: seed, cases: calibrationCases,
                                            source: source, threads: threads))
    }

    /// The simulations of --task (simulated with the seed) or of --simulations (and that file's SHA-256).
    func readSimulations() throws -> (ModelSpec, [[Double]], String?) {
        if let task {
            let simTask = try TaskRegistry.task(named: task)
            stderrLine("simulating \(budget) draws of \(task)")
            return (simTask.spec, simTask.simulate(count: budget, key: RandomKey(seed: seed).split(100)), nil)
        }
        let path = simulations!
        let digest = try FileDigest.sha256(ofFile: path, what: "the training set")
        let (spec, sims) = try TrainingSet.read(path: path)
        stderrLine("read \(sims.count) simulations of \(spec.variables.count) variables from \(path)")
        return (spec, sims, digest)
    }
}

func stderrLine(_ s: String) {
    // a closed standard error (e.g. `| tee` killed by the same Ctrl-C) must not stop a run from saving
    try? FileHandle.standardError.write(contentsOf: Data((s + "\n").utf8))
}
