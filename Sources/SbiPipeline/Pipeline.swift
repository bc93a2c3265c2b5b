// One observation file in, its outputs out: read -> map onto the model -> sample -> summarise ->
// write STEM.samples.nc, STEM.report.json and STEM.report.html, each atomically. A file that cannot
// be processed gets STEM.error.json instead, and no other output.
import Crypto
import Foundation
import SbiArchive
import SbiCore
import SbiModel

public struct ProcessOptions: Sendable {
    /// Overrides the file's sbiwatch_samples (default 1000).
    public var samples: Int?
    /// Overrides the file's sbiwatch_seed (default 0).
    public var seed: UInt64?
    public var threads: Int?
    /// Overrides the model's sampling steps.
    public var steps: Int?
    public var outbox: String
    /// The time written as `created` (SOURCE_DATE_EPOCH when set, for reproducible outputs).
    public var created: Date
    /// Output names (default: the input's file name without .nc).
    public var stem: String?
    /// Outputs are renamed into place only through this gate (the daemon closes it to abandon a file).
    public var gate: CommitGate?
    /// Runs inside the gate right after the outputs are in place (the daemon moves the input to done/).
    public var afterCommit: (@Sendable () throws -> Void)?

    public init(outbox: String, samples: Int? = nil, seed: UInt64? = nil, threads: Int? = nil, created: Date = Pipeline.creationDate(),
                stem: String? = nil, gate: CommitGate? = nil, afterCommit: (@Sendable () throws -> Void)? = nil) {
        self.outbox = outbox; self.samples = samples; self.seed = seed; self.threads = threads; self.created = created
        self.stem = stem; self.gate = gate; self.afterCommit = afterCommit
    }
}

/// Lets outputs be committed until it is closed; closing waits for a commit under way to finish,
/// so afterwards a file's outputs are either all in place (with its afterCommit done) or none are.
public final class CommitGate: @unchecked Sendable {
    private let lock = NSLock()
    private var closed = false
    public init() {}

    /// Runs body unless the gate is closed; returns whether it ran.
    @discardableResult
    public func perform(_ body: () throws -> Void) throws -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard !closed else { return false }
        try body()
        return true
    }

    public func close() { lock.lock(); closed = true; lock.unlock() }
}

public struct ProcessResult: Sendable {
    public var stem: String
    public var outputs: [String]
    public var modelName: String
    public var samples: Int
    public var warnings: Int
    public var seconds: Double
}

public enum Pipeline {
    public static let defaultSamples = 1000

    /// Now, or SOURCE_DATE_EPOCH when the environment sets it.
    public static func creationDate() -> Date {
        if let s = ProcessInfo.processInfo.environment["SOURCE_DATE_EPOCH"], let t = Double(s) { return Date(timeIntervalSince1970: t) }
        return Date()
    }

    static func iso(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: d)
    }

    /// The name outputs are built on: the file name without ".nc" / ".nc4" / ".cdf".
    public static func stem(of file: String) -> String {
        let name = URL(fileURLWithPath: file).lastPathComponent
        for ext in [".nc", ".nc4", ".cdf", ".netcdf"] where name.lowercased().hasSuffix(ext) && name.count > ext.count {
            return String(name.dropLast(ext.count))
        }
        return name
    }

    public static func outputPaths(stem: String, outbox: String) -> (samples: String, json: String, html: String, error: String) {
        let base = outbox + "/" + stem
        return (base + ".samples.nc", base + ".report.json", base + ".report.html", base + ".error.json")
    }

    /// SHA-256 of a file, read in 1 MiB pieces.
    public static func sha256(ofFile path: String) throws -> String {
        guard let h = FileHandle(forReadingAtPath: path) else {
            throw SbiError(.noInput, "\(path) cannot be opened", hint: "check that it exists and is readable")
        }
        defer { try? h.close() }
        var hasher = SHA256()
        while true {
            let chunk = h.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            hasher.update(data: chunk)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Processes one file. On failure writes STEM.error.json into the outbox and rethrows.
    @discardableResult
    public static func processOrReport(file: String, catalog: ModelCatalog, options: ProcessOptions,
                                       progress: ((Int, Int) -> Void)? = nil) throws -> ProcessResult {
        do {
            return try process(file: file, catalog: catalog, options: options, progress: progress)
        } catch {
            let e = (error as? SbiError) ?? SbiError(.internalError, "\(file): \(error)", hint: "report this with the file and the model")
            // the error report is best effort: when the outbox itself is the problem, the error says so
            try? writeError(e, file: file, outbox: options.outbox, created: options.created)
            throw e
        }
    }

    public static func writeError(_ error: SbiError, file: String, outbox: String, created: Date, stem: String? = nil,
                                  inputSHA256: String? = nil) throws {
        var report = ErrorReport(file: URL(fileURLWithPath: file).lastPathComponent, error: error, created: iso(created))
        report.inputSHA256 = inputSHA256 ?? (try? sha256(ofFile: file))
        try AtomicFile.write(try report.encoded(), to: outputPaths(stem: stem ?? self.stem(of: file), outbox: outbox).error)
    }

    public static func process(file: String, catalog: ModelCatalog, options: ProcessOptions,
                               progress: ((Int, Int) -> Void)? = nil) throws -> ProcessResult {
        let start = Date()
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: options.outbox, isDirectory: &isDir), isDir.boolValue else {
            throw SbiError(.cannotCreate, "the outbox \(options.outbox) is not a folder", hint: "create it, or pass --outbox with an existing folder")
        }
        let inputSHA = try sha256(ofFile: file)
        let observationFile = try ObservationFile(path: file)
        defer { observationFile.close() }
        let (modelName, loaded) = try catalog.model(named: observationFile.modelName, for: file)
        let obs = try observationFile.observation(for: loaded.model.spec, normalization: loaded.model.normalization)
        let samples = options.samples ?? observationFile.samples ?? defaultSamples
        let seed = options.seed ?? observationFile.seed ?? 0
        var settings = loaded.manifest.sampler
        if let steps = options.steps { settings.steps = steps }
        if !obs.plan.constraints.isEmpty { settings.resampling = max(settings.resampling, 5) }
        let read = Date()

        let draws: [[Double]]
        do {
            draws = obs.plan.complete(try Sampler.sample(loaded.model, tokens: obs.plan.tokens, obs.plan.conditioning, count: samples,
                                       settings: settings, key: RandomKey(seed: seed), threads: options.threads, progress: progress))
        } catch let e as SbiError where e.code == .usage {
            // what the sampler refuses (sizes, values) comes from the file
            throw SbiError(.badInput, "\(file): \(e.message)", hint: e.hint)
        }
        let targets = obs.plan.targets
        for d in draws { for t in targets where !d[t].isFinite {
            throw SbiError(.internalError, "\(file): the sampler produced a non-finite value for \(obs.plan.label(ofToken: t))",
                           hint: "report this with the file and model; try --seed with another value meanwhile")
        } }
        let sampled = Date()

        let spec = loaded.model.spec
        let columns = SampledColumns(observation: obs)
        var warnings = obs.warnings
        var parameters: [String: ScalarSummary] = [:]
        var scalarTokens: [String: [Int]] = [:]
        for s in columns.scalars {
            let v = spec.variables[spec.variableIndex(named: s.variable)!]
            for (e, t) in zip(s.elements, s.tokens) {
                let label = v.size == 1 ? v.name : "\(v.name)[\(e)]"
                let summary = ScalarSummary(draws.map { $0[t] }, support: v.support.map { ($0.lower, $0.upper) }, units: v.units)
                if let out = summary.outsideSupport, out > 0.1 {
                    warnings.append("\(Int((out * 100).rounded()))% of the samples of \(label) lie outside its prior range [\(num(v.support!.lower)), \(num(v.support!.upper))]: the observations may be unlike anything the simulator produces (misspecification), or the model is unsure here")
                }
                parameters[label] = summary
                if v.kind == .parameter { scalarTokens[label] = [t] }
            }
        }
        var functions: [String: BandSummary] = [:], predictions: [String: BandSummary] = [:]
        for f in columns.functions {
            let v = spec.variables[spec.variableIndex(named: f.variable)!]
            let band = BandSummary(time: f.query.modelTimes, columns: f.tokens.map { t in draws.map { $0[t] } },
                                   timeUnits: v.time?.units, units: v.units)
            if f.kind == .parameter { functions[f.variable] = band } else { predictions[f.variable] = band }
            if let sup = v.support {
                var outside = 0
                for d in draws { for t in f.tokens where !sup.contains(d[t]) { outside += 1 } }
                let fraction = Double(outside) / Double(max(1, f.tokens.count * draws.count))
                if fraction > 0.1 {
                    warnings.append("\(Int((fraction * 100).rounded()))% of the values of \(f.variable) lie outside its prior range [\(num(sup.lower)), \(num(sup.upper))]")
                }
            }
        }
        var observedSeries: [String: Report.ObservedSeries] = [:]
        for s in obs.series { observedSeries[s.name] = .init(time: s.times.map(rounded), value: s.values.map(rounded)) }
        let created = iso(options.created)
        var report = Report(
            created: created,
            input: .init(file: URL(fileURLWithPath: file).lastPathComponent, sha256: inputSHA),
            model: .init(name: modelName, sha256: loaded.sha256, task: loaded.manifest.provenance.task),
            sampler: .init(method: settings.method.rawValue, steps: settings.steps, samples: samples, seed: seed, resampling: settings.resampling),
            parameters: parameters, functions: functions, predictions: predictions,
            observed: .init(series: observedSeries,
                            scalars: Dictionary(obs.scalars.map { ($0.0, rounded($0.1)) }, uniquingKeysWith: { a, _ in a }),
                            intervals: Dictionary(obs.intervals.map { ($0.0, [$0.1.isFinite ? $0.1 : nil, $0.2.isFinite ? $0.2 : nil]) }, uniquingKeysWith: { a, _ in a })),
            diagnostics: .init(warnings: warnings, notes: obs.notes),
            timingsSeconds: [:], sbiwatchVersion: sbiwatchVersion)

        // write everything under temporary names, then rename into place
        let stem = options.stem ?? stem(of: file)
        let paths = outputPaths(stem: stem, outbox: options.outbox)
        let tmpSamples = AtomicFile.temporaryPath(for: paths.samples)
        defer { unlink(tmpSamples) }
        let attributes: [(String, String)] = [
            ("sbiwatch_input_file", URL(fileURLWithPath: file).lastPathComponent),
            ("sbiwatch_input_sha256", inputSHA),
            ("sbiwatch_model", modelName),
            ("sbiwatch_model_sha256", loaded.sha256),
            ("sbiwatch_seed", String(seed)),
            ("sbiwatch_samples", String(samples)),
            ("sbiwatch_sampler", settings.method.rawValue),
            ("sbiwatch_steps", String(settings.steps)),
            ("sbiwatch_resampling", String(settings.resampling)),
            ("sbiwatch_version", sbiwatchVersion),
            ("date_created", created),
        ]
        try SamplesWriter.write(draws, columns: columns, spec: spec, attributes: attributes, to: tmpSamples)
        let written = Date()
        report.timingsSeconds = ["read": read.timeIntervalSince(start), "sample": sampled.timeIntervalSince(read),
                                 "write": written.timeIntervalSince(sampled), "total": written.timeIntervalSince(start)]
            .mapValues { ($0 * 1000).rounded() / 1000 }
        let json = try report.encoded()
        let html = ReportPage.render(report, draws: draws, scalarTokens: scalarTokens)
        // every output complete on disk first; the commit is renames only, all or none
        let tmpJSON = try AtomicFile.prepare(json, for: paths.json)
        defer { unlink(tmpJSON) }
        let tmpHTML = try AtomicFile.prepare(Data(html.utf8), for: paths.html)
        defer { unlink(tmpHTML) }
        let commit = {
            var placed: [String] = []
            do {
                for (tmp, final) in [(tmpSamples, paths.samples), (tmpJSON, paths.json), (tmpHTML, paths.html)] {
                    try AtomicFile.commit(tmp, to: final)
                    placed.append(final)
                }
            } catch {
                for p in placed { unlink(p) }
                throw error
            }
            // a success replaces the error report of an earlier attempt
            unlink(paths.error)
            try options.afterCommit?()
        }
        if let gate = options.gate {
            guard try gate.perform(commit) else {
                throw SbiError(.temporary, "\(file): abandoned before its outputs were written (shutting down)", hint: "it goes back to the inbox")
            }
        } else {
            try commit()
        }
        return ProcessResult(stem: stem, outputs: [paths.samples, paths.json, paths.html], modelName: modelName,
                             samples: samples, warnings: warnings.count, seconds: Date().timeIntervalSince(start))
    }
}
