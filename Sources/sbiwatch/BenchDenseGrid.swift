import ArgumentParser
import Foundation
import SbiArchive
import SbiCore
import SbiEval
import SbiModel

extension QueryMethod: ExpressibleByArgument {
    /// "direct", or "interpolated" / "interpolate" (the file attribute's word).
    public init?(argument: String) {
        self.init(rawValue: argument == "interpolate" ? "interpolated" : argument)
    }
}

struct BenchDenseGrid: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dense-grid",
        abstract: "Coverage and smoothness of dense query grids on held-out simulations: functions on their whole grid, forecasts after a history cut.",
        discussion: "Each case observes every series at 20 times before the history's end (sird: day 36), queries each function-valued parameter on its dense grid and forecasts every series after the cut (sird: days 37 to 50, daily). Prints the coverage of the 50% and 90% bands per time, the mean absolute second difference of the median path against the prior's, and the time per case.")

    @Argument(help: ArgumentHelp("The model archive (trained on a built-in time-series task).", valueName: "model"))
    var model: String?

    @Option(parsing: .upToNextOption, help: ArgumentHelp(
        "Instead of a model: pool these --json outputs of runs of one model and design with different --seed values into one report over all their cases.",
        valueName: "run.json"))
    var pool: [String] = []

    @OptionGroup var output: BenchOutput
    @OptionGroup var sampling: BenchSamplerOptions
    @OptionGroup var threading: BenchThreads

    @Option(help: "Held-out simulations.")
    var cases: Int = 200

    @Option(help: "Posterior draws per held-out simulation.")
    var draws: Int = 200

    @Option(help: "Seed of the held-out simulations.")
    var seed: UInt64 = 2020

    @Option(help: "How grids are answered: direct (every time by the model, up to its trained density; denser grids interpolated) or interpolated (20 support times).")
    var method: QueryMethod = .direct

    func validate() throws {
        guard cases >= 10, draws >= 20 else { throw ValidationError("--cases >= 10 and --draws >= 20 needed") }
        guard (model == nil) != pool.isEmpty else { throw ValidationError("give either a model or --pool RUN.json...") }
    }

    func run() throws {
        guard let model else { return try runPool() }
        let loaded = try ModelArchive.load(model)
        guard let task = loaded.manifest.provenance.task, loaded.model.spec.hasTimeIndexed else {
            throw SbiError(.usage, "\(loaded.path) was not trained on a built-in time-series task; bench dense-grid simulates held-out cases of one",
                           hint: "use a model trained with --task sird or --task lotka_volterra_irregular")
        }
        let settings = sampling.applied(to: loaded.manifest.sampler)
        var report = try DenseGridCoverage.run(model: loaded.model, task: task, cases: cases, draws: draws,
                                               method: method == .interpolated ? .interpolated : nil, settings: settings,
                                               seed: seed, threads: threading.threads) { stderrLine($0) }
        report.modelSHA256 = loaded.sha256
        try output.print(report) { Self.text(report, path: loaded.path) }
    }

    /// --pool: the runs read back and added up (`DenseGridPool`).
    func runPool() throws {
        let runs = try pool.map { file -> (file: String, report: DenseGridReport) in
            guard let data = FileManager.default.contents(atPath: file) else {
                throw SbiError(.noInput, "cannot read \(file)", hint: "give the files `bench dense-grid MODEL --json` wrote")
            }
            do { return (file, try JSONDecoder().decode(DenseGridReport.self, from: data)) } catch {
                throw SbiError(.badInput, "\(file) is not the --json output of bench dense-grid (\(error))",
                               hint: "give the files `bench dense-grid MODEL --json` wrote")
            }
        }
        let pooled = try DenseGridPool.pool(runs), count = pooled.runs ?? runs.count
        try output.print(pooled) { Self.text(pooled, path: "\(count) pooled run\(count == 1 ? "" : "s")") }
    }

    static func text(_ r: DenseGridReport, path: String) -> String {
        var s = "dense grids of \(path) (\(r.task)), \(r.cases) cases x \(r.draws) draws, \(r.sampler) \(r.samplerSteps) steps, method \(r.method)\n"
        if let seeds = r.seeds { s += "  seeds \(seeds.map(String.init).joined(separator: ", "))\n" }
        else if r.runs != nil { s += "  seeds not recorded in every run (outputs of an older sbiwatch): check that they differ\n" }
        s += "  \(r.tokensPerCase) tokens, \(String(format: "%.2f", r.secondsPerCase)) s per case\n"
        for c in r.coverage {
            s += "  \(c.variable) on \(c.times.count) times (\(c.answeredBy?.sentence ?? "-")):\n"
            s += "    coverage 50%: \(range(c.coverage50)) (mean \(f3(mean(c.coverage50)))), worst deviation \(f3(c.worstDeviation50)) (1 SE \(f3(c.standardError50))), \(offCount(c.coverage50, 0.5)) of \(c.times.count) times more than 0.05 off\n"
            s += "    coverage 90%: \(range(c.coverage90)) (mean \(f3(mean(c.coverage90)))), worst deviation \(f3(c.worstDeviation90)) (1 SE \(f3(c.standardError90))), \(offCount(c.coverage90, 0.9)) of \(c.times.count) times more than 0.05 off\n"
        }
        for m in r.smoothness {
            s += "  \(m.variable) mean |second difference|: median path \(f4(m.posteriorMedian)), single draws \(f4(m.posteriorDraws)), prior paths \(f4(m.prior)) (median / prior \(f3(m.posteriorMedian / max(m.prior, 1e-12)))), median of \(r.draws) prior paths \(f4(m.priorMedian))\n"
        }
        return s
    }

    static func f3(_ x: Double) -> String { String(format: "%.3f", x) }
    static func f4(_ x: Double) -> String { String(format: "%.4f", x) }
    static func range(_ xs: [Double]) -> String { "\(f3(xs.min() ?? 0))-\(f3(xs.max() ?? 0))" }
    static func mean(_ xs: [Double]) -> Double { xs.reduce(0, +) / Double(max(xs.count, 1)) }
    /// Coverages more than 0.05 from nominal (with a hair of slack for the fractions' rounding).
    static func offCount(_ xs: [Double], _ nominal: Double) -> Int { xs.filter { abs($0 - nominal) > 0.05 + 1e-9 }.count }
}
