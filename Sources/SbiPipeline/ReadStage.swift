// Stage 1 of the pipeline: the input file opened, the model it asks for chosen, its observations
// mapped onto that model's tokens, and how to sample it settled (overrides > file > model).
import Foundation
import SbiArchive
import SbiCore
import SbiModel

/// How a file is sampled when not as the file and the model say (--samples, --seed, --steps).
/// The one place these are applied is `request(file:model:constrained:)`.
public struct SamplingOverrides: Sendable, Equatable {
    /// Overrides the file's sbiwatch_samples (default 1000).
    public var samples: Int?
    /// Overrides the file's sbiwatch_seed (default 0).
    public var seed: UInt64?
    /// Overrides the model's sampling steps.
    public var steps: Int?

    public init(samples: Int? = nil, seed: UInt64? = nil, steps: Int? = nil) {
        self.samples = samples; self.seed = seed; self.steps = steps
    }

    /// These overrides over the file's attributes over the model's sampler. Interval observations
    /// and constraints (guidance) get the file's sbiwatch_resampling steps, or at least 5.
    func request(file: ObservationFile, model: SamplerSettings, constrained: Bool) -> SamplingRequest {
        var settings = model.overriding(steps: steps)
        if constrained { settings.resampling = file.resampling ?? max(settings.resampling, 5) }
        return SamplingRequest(samples: samples ?? file.samples ?? Pipeline.defaultSamples,
                               seed: seed ?? file.seed ?? 0, settings: settings)
    }
}

/// How one file is sampled.
public struct SamplingRequest: Sendable, Equatable {
    public var samples: Int
    public var seed: UInt64
    public var settings: SamplerSettings
}

/// The file read and mapped onto its model.
public struct ReadObservation {
    public var observation: Observation
    public var modelName: String
    public var model: LoadedModel
    public var request: SamplingRequest
    /// The models file the catalog came from, if any.
    public var modelsFile: String?
}

extension ObservationFile {
    /// Reads `input`, choosing its model from `catalog`. Errors about the file name it by its
    /// display name; errors loading an archive name the archive.
    public static func read(_ input: InputFile, catalog: ModelCatalog, overrides: SamplingOverrides) throws -> ReadObservation {
        let file = try input.stage { try ObservationFile(path: input.path) }
        defer { file.close() }
        let reference = try input.stage { try catalog.reference(named: file.modelName) }
        let loaded = try catalog.load(reference)
        let observation = try input.stage {
            try file.observation(for: loaded.model.spec, normalization: loaded.model.normalization)
        }
        let request = overrides.request(file: file, model: loaded.manifest.sampler, constrained: !observation.plan.constraints.isEmpty)
        return ReadObservation(observation: observation, modelName: reference.name, model: loaded, request: request,
                               modelsFile: catalog.modelsFile)
    }
}
