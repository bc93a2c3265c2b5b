// The one path from simulations to a model archive, shared by `train` and `bench accuracy`:
// train, then provenance, then the archive's bytes, then the loaded model (no decoding round trip).
import Dispatch
import Foundation
import SbiChecks
import SbiCore
import SbiModel
import SbiTraining

/// Where a model's simulations came from and the command that rebuilds it (its provenance, less
/// the training figures, which the run itself supplies).
public struct TrainingOrigin: Sendable {
    /// Built-in task name, or nil when trained from a simulation file.
    public var task: String?
    /// SHA-256 of the simulation file, when trained from one.
    public var simulationsSHA256: String?
    public var seed: UInt64
    public var command: String
    /// The commands that built the initial weights (fine-tuning with `train --init`), oldest first.
    public var initialCommands: [String]?

    public init(task: String?, simulationsSHA256: String? = nil, seed: UInt64, command: String, initialCommands: [String]? = nil) {
        self.task = task; self.simulationsSHA256 = simulationsSHA256; self.seed = seed; self.command = command
        self.initialCommands = initialCommands
    }
}

/// The calibration pass of a model: where its held-out cases and references come from, and its size.
public struct CalibrationPlan {
    /// The first `count` held-out dense rows (never used in training); at most `available`.
    public var heldOut: (Int) -> [[Double]]
    public var available: Int
    /// Prior predictive rows for reference.json.
    public var references: [[Double]]
    /// Cases, or nil for the default: what fits in 10% of the training time.
    public var cases: Int?
    public var draws = 100
    public var replicates = PredictiveCheck.defaultReplicates
    public var seed: UInt64
    /// In words: where the held-out cases and references came from.
    public var source: String
    public var threads: Int?

    public init(heldOut: @escaping (Int) -> [[Double]], available: Int, references: [[Double]], cases: Int?,
                seed: UInt64, source: String, threads: Int? = nil) {
        self.heldOut = heldOut; self.available = available; self.references = references; self.cases = cases
        self.seed = seed; self.source = source; self.threads = threads
    }

    /// Measures the calibration of `model` sampled with `sampler`; `trainingSeconds` sizes the default pass.
    func measure(_ model: ScoreModel, sampler: SamplerSettings, trainingSeconds: Double,
                 progress: (String) -> Void) throws -> TrustRecord {
        let reference = ReferenceSet(origin: source, rows: references)
        let context = TrustContext(model: model, calibration: nil, reference: reference)
        var size = CalibrationSize(cases: cases ?? 0, draws: draws, replicates: replicates)
        if cases == nil {
            let pilot = try Calibration.secondsPerCase(context, row: heldOut(1)[0], size: size, settings: sampler, threads: threads)
            size.cases = CalibrationSize.defaultCases(trainingSeconds: trainingSeconds, secondsPerCase: pilot)
            progress("calibration: \(size.cases) held-out simulations at \(String(format: "%.2f", pilot)) s each (10% of the training time)")
            if size.cases < 100 {
                progress("calibration: \(size.cases) cases detect only gross miscalibration; --calibration-cases 200 (or `sbiwatch calibrate --cases 200`) measures it better")
            }
        }
        size.cases = min(size.cases, available)
        let calibration = try Calibration.measure(context, heldOut: heldOut(size.cases), size: size, settings: sampler,
                                                  seed: seed, source: source, threads: threads, progress: progress)
        return TrustRecord(calibration: calibration, reference: reference)
    }
}

/// What training produced: the archive's bytes (to save) and the model loaded from them.
public struct TrainedArchive {
    public var data: Data
    public var loaded: LoadedModel

    /// Trains on `simulations` and archives the result with `sampler` as its default sampler and,
    /// unless `calibration` is nil, the calibration measured after training. `source` names the
    /// model in messages (its path once saved).
    public static func train(spec: ModelSpec, simulations: [[Double]], settings: NetworkSettings, config: TrainingConfig,
                             sampler: SamplerSettings, origin: TrainingOrigin, source: String, initial: Arena? = nil,
                             calibration: CalibrationPlan? = nil, checkpoint: CheckpointPolicy? = nil,
                             progress: (TrainingProgress) -> Void, log: (String) -> Void = { _ in }) throws -> TrainedArchive {
        let (model, summary) = try Trainer.train(spec: spec, simulations: simulations, settings: settings, config: config,
                                                 initial: initial, checkpoint: checkpoint, progress: progress)
        var provenance = Provenance(task: origin.task, simulationsSHA256: origin.simulationsSHA256, simulations: simulations.count,
                                    seed: origin.seed, training: summary, command: origin.command, sbiwatchVersion: sbiwatchVersion)
        provenance.initialCommands = origin.initialCommands
        let trust: TrustRecord
        if let calibration {
            do {
                trust = try calibration.measure(model, sampler: sampler, trainingSeconds: summary.seconds, progress: log)
                // the cases chosen by timing become part of the command, so it rebuilds the same archive
                if calibration.cases == nil { provenance.command = withOption("--calibration-cases \(trust.calibration.cases)", provenance.command) }
            } catch let e as SbiError {
                // hours of training are not lost to a failed calibration: the archive says why it has none
                log("calibration failed: \(e.text); the model is saved without it (add it with `sbiwatch calibrate`)")
                trust = TrustRecord(calibration: .skipped("the calibration pass failed: \(e.text)"), reference: nil)
            }
        } else {
            trust = TrustRecord(calibration: .skipped("calibration skipped at training time (--calibration-cases 0)"), reference: nil)
        }
        return try archive(model, manifest: ModelArchive.manifest(of: model, sampler: sampler, provenance: provenance),
                           trust: trust, source: source)
    }

    /// Measures the calibration of an existing archive's model and archives it anew; its provenance
    /// records `command`. With `sampler`, that becomes the model's default and is calibrated.
    public static func calibrate(_ loaded: LoadedModel, plan: CalibrationPlan, sampler: SamplerSettings? = nil, command: String,
                                 source: String, log: (String) -> Void) throws -> TrainedArchive {
        var manifest = loaded.manifest
        if let sampler { manifest.sampler = sampler }
        let trust = try plan.measure(loaded.model, sampler: manifest.sampler, trainingSeconds: manifest.provenance.training.seconds,
                                     progress: log)
        manifest.provenance.calibrationCommand = plan.cases == nil ? withOption("--cases \(trust.calibration.cases)", command) : command
        return try archive(loaded.model, manifest: manifest, trust: trust, source: source)
    }

    /// `command` with `option` inserted before its final --out.
    static func withOption(_ option: String, _ command: String) -> String {
        guard let r = command.range(of: " --out ", options: .backwards) else { return command + " " + option }
        return command[..<r.lowerBound] + " " + option + command[r.lowerBound...]
    }

    static func archive(_ model: ScoreModel, manifest: Manifest, trust: TrustRecord, source: String) throws -> TrainedArchive {
        let data = try ModelArchive.encode(model, manifest: manifest, trust: trust)
        let loaded = LoadedModel(model: model, manifest: manifest, sha256: ModelArchive.sha256Hex(data), path: source,
                                 calibration: trust.calibration, reference: trust.reference)
        return TrainedArchive(data: data, loaded: loaded)
    }
}

/// A training set's rows split for calibration (by a seeded permutation): a fifth, at most 1500,
/// held out of training and early stopping: up to 500 references, the rest calibration cases.
public struct CalibrationSplit: Equatable, Sendable {
    public var training: [Int]
    public var references: [Int]
    public var cases: [Int]

    public init(count: Int, seed: UInt64) {
        var rng = RandomStream(key: RandomKey(seed: seed).split(0x5917))
        let order = rng.permutation(count)
        let held = min(count / 5, 1500), refs = min(CalibrationSize.references, held / 2)
        references = Array(order[0..<refs]).sorted()
        cases = Array(order[refs..<held])
        training = Array(order[held...]).sorted()
    }
}
