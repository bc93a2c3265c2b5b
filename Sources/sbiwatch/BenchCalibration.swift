import ArgumentParser
import Foundation
import SbiArchive
import SbiChecks
import SbiCore

struct BenchCalibration: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibration",
        abstract: "The calibration pass of `sbiwatch calibrate` on a model, printed and not stored: SBC, coverage, z-scores, contraction.")

    @Argument(help: ArgumentHelp("The model archive (trained on a built-in task).", valueName: "model"))
    var model: String

    @OptionGroup var output: BenchOutput
    @OptionGroup var sampling: BenchSamplerOptions
    @OptionGroup var threading: BenchThreads

    @Option(help: "Held-out simulations.")
    var cases: Int = 200

    @Option(help: "Posterior draws per held-out simulation (SBC ranks lie in 0...draws).")
    var draws: Int = 100

    @Option(help: "Seed of the held-out simulations.")
    var seed: UInt64 = 12345

    func validate() throws {
        guard cases >= 20, draws >= 10 else { throw ValidationError("--cases >= 20 and --draws >= 10 needed") }
    }

    func run() throws {
        let loaded = try ModelArchive.load(model)
        guard let task = loaded.manifest.provenance.task else {
            throw SbiError(.usage, "\(loaded.path) was trained from a simulation file; bench calibration needs a built-in task to simulate held-out cases",
                           hint: "use `sbiwatch calibrate --simulations HELD-OUT.nc` for it")
        }
        var plan = try CalibrationSources.task(task, seed: seed, cases: cases, threads: threading.threads)
        plan.draws = draws
        let settings = sampling.applied(to: loaded.manifest.sampler)
        let context = TrustContext(model: loaded.model, calibration: nil, reference: ReferenceSet(origin: plan.source, rows: plan.references))
        let report = try Calibration.measure(context, heldOut: plan.heldOut(cases), size: CalibrationSize(cases: cases, draws: draws),
                                             settings: settings, seed: seed, source: plan.source, threads: threading.threads) { stderrLine($0) }
        try output.print(report) {
            "calibration of \(loaded.path) (\(task)):\n" + ModelCard.calibrationLines(report).joined(separator: "\n") + "\n"
        }
    }
}
