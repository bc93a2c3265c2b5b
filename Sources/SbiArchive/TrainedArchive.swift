// The one path from simulations to a model archive, shared by `train` and `bench accuracy`:
// train, then provenance, then the archive's bytes, then the loaded model (no decoding round trip).
import Foundation
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

    public init(task: String?, simulationsSHA256: String? = nil, seed: UInt64, command: String) {
        self.task = task; self.simulationsSHA256 = simulationsSHA256; self.seed = seed; self.command = command
    }
}

/// What training produced: the archive's bytes (to save) and the model loaded from them.
public struct TrainedArchive {
    public var data: Data
    public var loaded: LoadedModel

    /// Trains on `simulations` and archives the result with `sampler` as its default sampler.
    /// `source` names the model in messages (its path once saved).
    public static func train(spec: ModelSpec, simulations: [[Double]], settings: NetworkSettings, config: TrainingConfig,
                             sampler: SamplerSettings, origin: TrainingOrigin, source: String,
                             checkpoint: CheckpointPolicy? = nil, progress: (TrainingProgress) -> Void) throws -> TrainedArchive {
        let (model, summary) = try Trainer.train(spec: spec, simulations: simulations, settings: settings, config: config,
                                                 checkpoint: checkpoint, progress: progress)
        let provenance = Provenance(task: origin.task, simulationsSHA256: origin.simulationsSHA256, simulations: simulations.count,
                                    seed: origin.seed, training: summary, command: origin.command, sbiwatchVersion: sbiwatchVersion)
        let manifest = ModelArchive.manifest(of: model, sampler: sampler, provenance: provenance)
        let data = try ModelArchive.encode(model, manifest: manifest, calibration: nil)
        let loaded = LoadedModel(model: model, manifest: manifest, sha256: ModelArchive.sha256Hex(data), path: source, calibration: nil)
        return TrainedArchive(data: data, loaded: loaded)
    }
}
