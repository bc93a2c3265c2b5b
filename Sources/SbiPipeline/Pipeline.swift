// One observation file in, its outputs out, in named stages with typed hand-offs:
//
//   InputFile.identify     path -> InputFile (display name, SHA-256, hashed once)
//   FileProbe.vet          a test read in a child process (when a probe is given)
//   ObservationFile.read   InputFile + catalog -> ReadObservation (observation, plan, model, request)
//   Draws.sample           ReadObservation -> Draws
//   FileChecks.check      ReadObservation + Draws -> FileChecks (the trust checks and the verdict)
//   Report(observation:draws:checks:input:created:)
//   OutputSet / PreparedOutputs: STEM.samples.nc, STEM.report.json, STEM.report.html under
//                          temporary names, then commit (renames only, all or none)
//
// A file that cannot be processed gets STEM.error.json instead, and no other output.
import Foundation
import SbiArchive
import SbiChecks
import SbiCore
import SbiModel

public struct ProcessOptions: Sendable {
    public var outbox: String
    /// --samples, --seed, --steps.
    public var overrides: SamplingOverrides
    public var threads: Int?
    /// The time written as `created` (SOURCE_DATE_EPOCH when set, for reproducible outputs).
    public var created: Date
    /// Output names (default: the input's file name without .nc).
    public var stem: String?
    /// How errors name the input (default: its path as given).
    public var displayName: String?
    /// The input's SHA-256 when the caller has it already (the daemon hashes a file to choose its stem).
    public var inputSHA256: String?
    /// Outputs are renamed into place only through this gate (the daemon closes it to abandon a file).
    public var gate: CommitGate?
    /// Runs inside the gate right after the outputs are in place (the daemon moves the input to done/).
    public var afterCommit: (@Sendable () throws -> Void)?
    /// Checks the file in a child process before it is read here (the command line's
    /// `probe-netcdf`); a file that crashes the child is refused. Nil: read it directly.
    public var probe: FileProbe?

    public init(outbox: String, overrides: SamplingOverrides = SamplingOverrides(), threads: Int? = nil,
                created: Date = Pipeline.creationDate()) {
        self.outbox = outbox; self.overrides = overrides; self.threads = threads; self.created = created
    }
}

/// The outputs of a good file could not be written (an outbox that is missing, read-only or
/// full): the outbox's fault, not the input's. The daemon returns such an input to the inbox.
public struct OutputStageFailure: Error, CustomStringConvertible {
    public var error: SbiError
    public var description: String { error.description }
}

public struct ProcessResult: Sendable {
    public var stem: String
    public var outputs: [String]
    public var modelName: String
    public var samples: Int
    public var warnings: Int
    /// The report's verdict: ok, caution or unreliable.
    public var verdict: String
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

    /// Processes one file. On failure writes STEM.error.json into the outbox and rethrows.
    @discardableResult
    public static func processOrReport(file: String, catalog: ModelCatalog, options: ProcessOptions,
                                       progress: ((Int, Int) -> Void)? = nil) throws -> ProcessResult {
        var options = options
        // hashed once, here, for the outputs and for an error report alike
        if options.inputSHA256 == nil { options.inputSHA256 = try? InputFile.sha256(ofFile: file) }
        do {
            return try process(file: file, catalog: catalog, options: options, progress: progress)
        } catch {
            let e = (error as? OutputStageFailure)?.error ?? (error as? SbiError)
                ?? SbiError(.internalError, "\(error)", hint: "report this with the file and the model", subject: options.displayName ?? file)
            // the error report is best effort: when the outbox itself is the problem, the error says so
            try? writeError(e, file: file, options: options)
            throw e
        }
    }

    /// Writes STEM.error.json for `file` into the options' outbox (under the options' stem).
    public static func writeError(_ error: SbiError, file: String, options: ProcessOptions) throws {
        var report = ErrorReport(file: URL(fileURLWithPath: file).lastPathComponent, error: error, created: iso(options.created))
        report.inputSHA256 = options.inputSHA256
        try OutputSet(stem: options.stem ?? stem(of: file), outbox: options.outbox).writeError(report)
    }

    public static func process(file: String, catalog: ModelCatalog, options: ProcessOptions,
                               progress: ((Int, Int) -> Void)? = nil) throws -> ProcessResult {
        var clock = StageClock()
        do { try OutputSet.checkOutbox(options.outbox) } catch let e as SbiError { throw OutputStageFailure(error: e) }
        let input = try InputFile.identify(path: file, displayName: options.displayName, sha256: options.inputSHA256)
        try options.probe?.vet(input)
        let read = try ObservationFile.read(input, catalog: catalog, overrides: options.overrides)
        clock.mark("read")
        let draws = try Draws.sample(read, input: input, threads: options.threads, progress: progress)
        clock.mark("sample")
        let checks = try FileChecks.check(read, draws: draws, input: input, threads: options.threads)
        clock.mark("check")
        let outputs = OutputSet(stem: options.stem ?? stem(of: file), outbox: options.outbox)
        let report = try write(Report(observation: read, draws: draws, checks: checks, input: input, created: options.created),
                               read: read, draws: draws, input: input, to: outputs, options: options, clock: &clock)
        return ProcessResult(stem: outputs.stem, outputs: outputs.results, modelName: read.modelName, samples: draws.request.samples,
                             warnings: report.diagnostics.warnings.count, verdict: checks.verdict.level.rawValue, seconds: clock.elapsed)
    }

    /// The output stage: every output under a temporary name, then the commit. A failure to write
    /// (not the input's fault) is an OutputStageFailure.
    static func write(_ report: Report, read: ReadObservation, draws: Draws, input: InputFile, to outputs: OutputSet,
                      options: ProcessOptions, clock: inout StageClock) throws -> Report {
        var report = report
        let prepared = PreparedOutputs(outputs)
        defer { prepared.discard() }
        let committed: Bool
        do {
            let columns = SampledColumns(observation: read.observation), spec = read.observation.plan.spec
            try SamplesWriter.write(draws.rows, columns: columns, spec: spec,
                                    attributes: SamplesWriter.attributes(input: input, read: read, request: draws.request, created: report.created),
                                    to: prepared.temporary(for: outputs.samples))
            clock.mark("write")
            report.timingsSeconds = clock.timings
            try prepared.prepare(try report.encoded(), for: outputs.json)
            let page = ReportPage.render(report, draws: draws.rows, unconstrained: draws.unconstrained, scalarTokens: columns.parameterTokens(spec: spec))
            try prepared.prepare(Data(page.utf8), for: outputs.html)
            committed = try prepared.commit(gate: options.gate, afterCommit: options.afterCommit)
        } catch let e as SbiError where e.code == .cannotCreate || e.code == .ioError {
            throw OutputStageFailure(error: e)
        }
        guard committed else {
            throw SbiError(.temporary, "abandoned before its outputs were written (shutting down)", hint: "it goes back to the inbox",
                           subject: input.displayName)
        }
        return report
    }
}

/// Seconds per stage since the start, for the report's timings_seconds (rounded to milliseconds).
struct StageClock {
    let start = Date()
    private var last: Date
    private var marks: [(String, Double)] = []

    init() { last = start }

    /// Ends the stage `name` now.
    mutating func mark(_ name: String) {
        let now = Date()
        marks.append((name, now.timeIntervalSince(last)))
        last = now
    }

    var elapsed: Double { Date().timeIntervalSince(start) }

    /// Every stage and "total" (up to the last mark).
    var timings: [String: Double] {
        var t = Dictionary(marks, uniquingKeysWith: { a, _ in a })
        t["total"] = last.timeIntervalSince(start)
        return t.mapValues { ($0 * 1000).rounded() / 1000 }
    }
}
