import ArgumentParser
import Foundation
import SbiArchive
import SbiCore
import SbiEval
import SbiModel

struct BenchThroughput: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "throughput",
        abstract: "Single-core sgemm peak and the network's training and sampling throughput, in one run.")

    @OptionGroup var output: BenchOutput
    @OptionGroup var threading: BenchThreads

    @Option(help: "Seconds to spend measuring each configuration.")
    var seconds: Double = 3

    @Option(name: .customLong("only"), help: "Measure only the configurations whose name contains this text.")
    var only: String?

    func validate() throws {
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
    }

    func run() throws {
        let report = ThroughputBench(seconds: seconds, threads: threading.threads ?? BatchParallel.defaultThreads, only: only).run { line in
            stderrLine(line)
        }
        try output.print(report) { report.text }
    }
}

struct BenchQuery: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Time a SIRD posterior query: 1,000 samples, beta on 100 points, 20 observations per series.")

    @OptionGroup var output: BenchOutput
    @OptionGroup var threading: BenchThreads
    @OptionGroup var sampling: BenchSamplerOptions

    @Option(help: ArgumentHelp("A trained SIRD model and its sampler (default: an untrained large network, 50 SDE steps).", valueName: "model"))
    var model: String?

    func run() throws {
        stderrLine("timing a SIRD posterior query (1,000 samples, beta on 100 points, 20 observations per series)")
        let loaded = try model.map { try ModelArchive.load($0) }
        let settings = sampling.applied(to: loaded?.manifest.sampler ?? SamplerSettings())
        let q = try QueryTiming.sird(model: loaded?.model, settings: settings, threads: threading.threads)
        try output.print(q) {
            String(format: "%@: %.1f s for %d samples of %d tokens (%@ %d steps, %d network evaluations, %@)\n", q.name, q.seconds,
                   q.samples, q.tokens, q.sampler, q.samplerSteps, q.networkEvaluations, q.model)
        }
    }
}
