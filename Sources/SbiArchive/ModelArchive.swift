// The pinned model archive (.sbim): manifest.json, weights.safetensors, README.md (model card)
// and optionally calibration.json, in a gzip'd tar. Named with its SHA-256 as ARCHIVE@sha256:HEX.
import Crypto
import Foundation
import SbiChecks
import SbiCore
import SbiModel
import SbiTraining

/// How a model was made: enough to rebuild it.
public struct Provenance: Codable, Hashable, Sendable {
    /// Built-in task name, or nil when trained from a simulation file.
    public var task: String?
    /// SHA-256 of the simulation file, when trained from one.
    public var simulationsSHA256: String?
    public var simulations: Int
    public var seed: UInt64
    public var training: TrainingSummary
    public var command: String
    public var sbiwatchVersion: String
    /// The `sbiwatch calibrate` command that added the archive's calibration, when it was added later.
    public var calibrationCommand: String?
    /// The `sbiwatch train` commands that built the weights this model's training started from
    /// (`train --init`), oldest first; nil for a model trained from fresh weights.
    public var initialCommands: [String]?

    /// Every `sbiwatch train` command that built the weights, oldest first (the initial model's, then this one's).
    public var trainCommands: [String] { (initialCommands ?? []) + [command] }

    public init(task: String?, simulationsSHA256: String?, simulations: Int, seed: UInt64,
                training: TrainingSummary, command: String, sbiwatchVersion: String, calibrationCommand: String? = nil) {
        self.task = task; self.simulationsSHA256 = simulationsSHA256; self.simulations = simulations
        self.seed = seed; self.training = training; self.command = command; self.sbiwatchVersion = sbiwatchVersion
        self.calibrationCommand = calibrationCommand
    }
}

/// What an archive carries for the checks: calibration.json and reference.json.
public struct TrustRecord: Sendable {
    public var calibration: ModelCalibration
    public var reference: ReferenceSet?
    public init(calibration: ModelCalibration, reference: ReferenceSet?) { self.calibration = calibration; self.reference = reference }
}

/// manifest.json
public struct Manifest: Codable, Hashable, Sendable {
    public static let currentFormatVersion = 1
    public var format: String
    public var formatVersion: Int
    public var spec: ModelSpec
    public var network: NetworkSettings
    public var transformer: TransformerConfig
    public var normalization: Normalization
    public var sampler: SamplerSettings
    public var provenance: Provenance
}

/// A loaded archive.
public struct LoadedModel: @unchecked Sendable {
    public var model: ScoreModel
    public var manifest: Manifest
    public var sha256: String
    public var path: String
    /// calibration.json, when the archive has one.
    public var calibration: ModelCalibration?
    /// reference.json, when the archive has one.
    public var reference: ReferenceSet?

    /// The model with what it carries for checking files.
    public var trust: TrustContext { TrustContext(model: model, calibration: calibration, reference: reference) }
}

public enum ModelArchive {
    /// The libarchive it is linked with, e.g. "libarchive 3.6.2".
    public static var libraryVersion: String { TarIO.libraryVersion }

    static let entryNames: Set<String> = ["manifest.json", "weights.safetensors", "README.md", "calibration.json", "reference.json"]

    /// The largest archive file sbiwatch reads (its entries are capped at 256 MB each).
    public static let maxArchiveBytes = 1 << 30

    public static func sha256Hex(_ data: Data) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    /// The archive bytes of a model (deterministic for the same model and manifest).
    public static func encode(_ model: ScoreModel, sampler: SamplerSettings, provenance: Provenance,
                              trust: TrustRecord? = nil) throws -> Data {
        try encode(model, manifest: manifest(of: model, sampler: sampler, provenance: provenance), trust: trust)
    }

    /// The manifest of a model with its sampler and provenance.
    public static func manifest(of model: ScoreModel, sampler: SamplerSettings, provenance: Provenance) -> Manifest {
        Manifest(format: "sbiwatch-model", formatVersion: Manifest.currentFormatVersion,
                 spec: model.spec, network: model.settings, transformer: model.transformer.config,
                 normalization: model.normalization, sampler: sampler, provenance: provenance)
    }

    public static func encode(_ model: ScoreModel, manifest: Manifest, trust: TrustRecord?) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted]
        var files: [(name: String, data: Data)] = [
            ("manifest.json", try enc.encode(manifest)),
            ("weights.safetensors", try Safetensors.encode(model.params, metadata: ["format": "sbiwatch", "dtype": "float32"])),
            ("README.md", Data(ModelCard.text(manifest, calibration: trust?.calibration).utf8)),
        ]
        if let trust {
            files.append(("calibration.json", try trust.calibration.encoded()))
            if let reference = trust.reference { files.append(("reference.json", try enc.encode(reference))) }
        }
        return try TarIO.write(files)
    }

    /// Writes atomically: a temporary name in the same directory, fsync, rename. Returns the SHA-256.
    @discardableResult
    public static func save(_ data: Data, to path: String) throws -> String {
        try AtomicFile.write(data, to: path)
        return sha256Hex(data)
    }

    /// Splits "PATH@sha256:HEX" into the path and the expected digest.
    public static func parseReference(_ reference: String) throws -> (path: String, pin: String?) {
        guard let r = reference.range(of: "@sha256:", options: .backwards) else { return (reference, nil) }
        let pin = String(reference[r.upperBound...]).lowercased()
        guard pin.count == 64, pin.allSatisfy({ $0.isHexDigit }) else {
            throw SbiError(.usage, "'\(reference)' has a malformed pin; after @sha256: come 64 hexadecimal digits",
                           hint: "copy the pin printed by `sbiwatch inspect \(reference[..<r.lowerBound])`")
        }
        return (String(reference[..<r.lowerBound]), pin)
    }

    /// The path of "PATH" or "PATH@sha256:HEX" (no check of the pin).
    public static func pathPart(_ reference: String) -> String {
        reference.range(of: "@sha256:", options: .backwards).map { String(reference[..<$0.lowerBound]) } ?? reference
    }

    /// Loads "PATH" or "PATH@sha256:HEX"; a pinned load refuses an archive whose digest differs.
    public static func load(_ reference: String) throws -> LoadedModel {
        let (path, pin) = try parseReference(reference)
        let data: Data
        do { data = try RegularFile.read(path, what: "model archive \(path)", limit: maxArchiveBytes) } catch var e as SbiError {
            if e.code == .noInput { e.hint = "check the path and its permissions, or build it with `sbiwatch train`" }
            e.subject = nil   // the message names the archive
            throw e
        }
        let digest = sha256Hex(data)
        if let pin, pin != digest {
            throw SbiError(.configuration, "model archive \(path) has SHA-256 \(digest), but the pin asks for \(pin)",
                           hint: "the file changed since it was pinned; restore the pinned archive or update the pin deliberately")
        }
        return try decode(data, source: path, sha256: digest)
    }

    public static func decode(_ data: Data, source: String, sha256: String) throws -> LoadedModel {
        let files = try TarIO.read(data, source: source, allowed: entryNames)
        guard let manifestData = files["manifest.json"] else {
            throw SbiError(.badInput, "\(source) has no manifest.json", hint: "this is not an sbiwatch model archive")
        }
        let manifest = try decodeManifest(manifestData, source: source)
        guard let weights = files["weights.safetensors"] else {
            throw SbiError(.badInput, "\(source) has no weights.safetensors", hint: "this is not a complete sbiwatch model archive; rebuild it")
        }
        let transformer = Transformer(config: manifest.transformer)
        let params = try Safetensors.decode(weights, layout: transformer.layout, source: source)
        let model = ScoreModel(spec: manifest.spec, settings: manifest.network, config: manifest.transformer, params: params,
                               normalization: manifest.normalization)
        let calibration = try files["calibration.json"].map { try decodeEntry(ModelCalibration.self, $0, "calibration.json", source) }
        let reference = try files["reference.json"].map { try decodeEntry(ReferenceSet.self, $0, "reference.json", source) }
        try validate(calibration: calibration, reference: reference, spec: manifest.spec, source: source)
        return LoadedModel(model: model, manifest: manifest, sha256: sha256, path: source, calibration: calibration, reference: reference)
    }

    /// calibration.json and reference.json fit the model: formats, sizes, widths, finite values.
    static func validate(calibration: ModelCalibration?, reference: ReferenceSet?, spec: ModelSpec, source: String) throws {
        func bad(_ what: String) -> SbiError {
            SbiError(.badInput, "\(source): \(what)", hint: "the archive is damaged; recalibrate it with `sbiwatch calibrate` or rebuild it with the command in its model card")
        }
        if let c = calibration {
            guard c.format == "sbiwatch-calibration-1" else { throw bad("calibration.json has format \(c.format); this sbiwatch reads sbiwatch-calibration-1") }
            guard c.parameters.count <= 100_000, c.predictiveNull.values.allSatisfy({ $0.count <= 1_000_000 }),
                  c.parameters.allSatisfy({ $0.sbc.cases > 0 && $0.sbc.draws > 0 && $0.sbc.difference.count == $0.sbc.points.count }),
                  (c.predictiveNullCases ?? [:]).values.allSatisfy({ cases in
                      cases.count <= 1_000_000 && cases.allSatisfy { (0...1).contains($0.pValue) && (0...1).contains($0.largestGap) && (0...1).contains($0.trailingGap ?? 0) }
                  }) else {
                throw bad("calibration.json is inconsistent (sizes or SBC fields)")
            }
        }
        if let r = reference {
            guard r.format == "sbiwatch-reference-1" else { throw bad("reference.json has format \(r.format); this sbiwatch reads sbiwatch-reference-1") }
            guard (6...5000).contains(r.rows.count) else { throw bad("reference.json holds \(r.rows.count) simulations; 6 to 5000 are allowed") }
            guard r.rows.allSatisfy({ $0.count == spec.denseWidth && $0.allSatisfy(\.isFinite) }) else {
                throw bad("reference.json has rows that are not \(spec.denseWidth) finite values (the model's dense layout)")
            }
        }
    }

    static func decodeEntry<T: Decodable>(_ type: T.Type, _ data: Data, _ entry: String, _ source: String) throws -> T {
        let decoder = JSONDecoder()
        let n = ModelCalibration.nonFinite
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: n.positiveInfinity,
                                                                        negativeInfinity: n.negativeInfinity, nan: n.nan)
        do { return try decoder.decode(type, from: data) } catch {
            throw SbiError(.badInput, "\(source): \(entry) cannot be read: \(error)",
                           hint: "the archive is damaged; rebuild it with the command in its model card, or recalibrate it with `sbiwatch calibrate`")
        }
    }

    /// manifest.json: its format version, then the manifest, validated field by field.
    public static func decodeManifest(_ manifestData: Data, source: String) throws -> Manifest {
        // the version first, so a newer format gets a clear message rather than a decoding error
        struct Version: Decodable { var format: String?; var formatVersion: Int? }
        let version = try? JSONDecoder().decode(Version.self, from: manifestData)
        guard version?.format == "sbiwatch-model" else {
            throw SbiError(.badInput, "\(source): manifest.json is not an sbiwatch model manifest", hint: "this is not an sbiwatch model archive")
        }
        guard version?.formatVersion == Manifest.currentFormatVersion else {
            throw SbiError(.badInput, "\(source) has model format version \(version?.formatVersion.map(String.init) ?? "?"); this sbiwatch reads version \(Manifest.currentFormatVersion)",
                           hint: "use the sbiwatch version that wrote it, or rebuild the model with this one")
        }
        let manifest: Manifest
        do { manifest = try JSONDecoder().decode(Manifest.self, from: manifestData) } catch {
            throw SbiError(.badInput, "\(source): manifest.json cannot be read: \(error)",
                           hint: "the archive is damaged or was not written by sbiwatch train; rebuild it with the command in its model card")
        }
        try manifest.validate(source: source)
        let expected = ScoreModel.transformerConfig(spec: manifest.spec, settings: manifest.network)
        guard expected.width == manifest.transformer.width, expected.identifiers == manifest.transformer.identifiers,
              manifest.normalization.mean.count == manifest.spec.nodeCount,
              manifest.normalization.std.count == manifest.spec.nodeCount else {
            throw SbiError(.badInput, "\(source): manifest.json is inconsistent (network or normalisation does not fit the variables)",
                           hint: "the archive is damaged or was not written by sbiwatch train; rebuild it with the command in its model card")
        }
        return manifest
    }
}
