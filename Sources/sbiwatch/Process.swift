import ArgumentParser
import Foundation
import SbiCore
import SbiPipeline

/// The models a command may use: --model (repeatable) and --config (a models file).
struct ModelOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A pinned model, [NAME=]ARCHIVE[@sha256:HEX] (repeatable); NAME defaults to the archive's file name without .sbim.",
                               valueName: "model"))
    var model: [String] = []

    @Option(help: ArgumentHelp("A models file: one [NAME=]ARCHIVE@sha256:HEX per line, '#' comments; relative paths are relative to the file. Without --model and --config: the first models file on the search path (man sbiwatch, FILES).",
                               valueName: "file"))
    var config: String?

    /// --model and --config; with neither, the first models file on the search path
    /// ($SBIWATCH_MODELS, ./sbiwatch.models, $XDG_CONFIG_HOME/sbiwatch/models, /etc/sbiwatch/models,
    /// the models installed with the binary).
    func catalog() throws -> ModelCatalog {
        guard !model.isEmpty || config != nil else { return try ModelSearchPath.current().catalog() }
        var refs = try model.map { try ModelReference.parse($0) }
        if let config { refs += try ModelReference.readFile(config) }   // refuses a file that lists no model
        return try ModelCatalog(refs, modelsFile: config)
    }
}

/// How a file is sampled, when not as the file and model say: shared by `process` and `watch`.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Posterior samples per file (default: the file's sbiwatch_samples, else 1000).")
    var samples: Int?

    @Option(help: "Seed of the sampler (default: the file's sbiwatch_seed, else 0).")
    var seed: UInt64?

    @Option(help: "Sampling steps (default: the model's; fewer are faster and coarser).")
    var steps: Int?

    func validate() throws {
        if let samples, !(1...100_000).contains(samples) { throw ValidationError("--samples must be between 1 and 100000") }
        if let steps, !(2...10_000).contains(steps) { throw ValidationError("--steps must be between 2 and 10000") }
    }

    var overrides: SamplingOverrides { SamplingOverrides(samples: samples, seed: seed, steps: steps) }
}

struct Process: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Turn one NetCDF observation file into posterior samples and reports.",
        discussion: "Writes STEM.samples.nc, STEM.report.json and STEM.report.html into the outbox, or STEM.error.json when the file cannot be used (exit 65). See `man sbiwatch`, OBSERVATION FILES.")

    @Argument(help: "The observation file (NetCDF).")
    var file: String

    @Option(help: "Folder for the outputs (default: the input file's folder).")
    var outbox: String?

    @OptionGroup var models: ModelOptions

    @OptionGroup var sampling: SamplingOptions

    @Option(help: "Worker threads (default: the processor count).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let catalog = try models.catalog()
        let outbox = self.outbox ?? URL(fileURLWithPath: file).deletingLastPathComponent().path
        var options = ProcessOptions(outbox: outbox, overrides: sampling.overrides, threads: threads)
        // the file is read in a child process first, so a file that crashes netCDF is refused, not fatal
        options.probe = .childProcess(executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path)
        let start = Date()
        var last = start
        let result = try Pipeline.processOrReport(file: file, catalog: catalog, options: options) { done, total in
            let now = Date()
            guard now.timeIntervalSince(last) >= 2 else { return }
            last = now
            let left = now.timeIntervalSince(start) * Double(total - done) / Double(max(done, 1))
            stderrLine("\(file): sampling \(done)/\(total), ETA \(Int(left.rounded())) s")
        }
        for o in result.outputs { print(o) }
        stderrLine("\(file): \(result.samples) samples with model \(result.modelName) in \(String(format: "%.2f", result.seconds)) s\(result.warnings > 0 ? ", \(result.warnings) warning\(result.warnings == 1 ? "" : "s") (see the report)" : ""); verdict \(result.verdict)")
    }
}
