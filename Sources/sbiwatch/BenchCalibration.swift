import ArgumentParser
import Foundation
import SbiArchive
import SbiCore
import SbiEval
import SbiTasks

struct BenchCalibration: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibration",
        abstract: "Coverage of central 50% and 90% credible intervals of a model on held-out simulations of its task.")

    @Argument(help: ArgumentHelp("The model archive (trained on a built-in task).", valueName: "model"))
    var model: String

    @OptionGroup var output: BenchOutput
    @OptionGroup var sampling: BenchSamplerOptions

    @Option(name: .customLong("held-out"), help: "Held-out simulations.")
    var heldOut: Int = 200

    @Option(help: "Posterior samples per held-out simulation.")
    var samples: Int = 200

    @Option(name: .customLong("per-series"), help: "Observation times per data series.")
    var perSeries: Int = 10

    func validate() throws {
        guard heldOut >= 1, samples >= 10, perSeries >= 1 else {
            throw ValidationError("--held-out >= 1, --samples >= 10 and --per-series >= 1 needed")
        }
    }

    func run() throws {
        let loaded = try ModelArchive.load(model)
        guard let taskName = loaded.manifest.provenance.task else {
            throw SbiError(.usage, "\(loaded.path) was trained from a simulation file; bench calibration needs a built-in task to simulate held-out cases")
        }
        let task = try TaskRegistry.task(named: taskName)
        let report = try Calibration.run(model: loaded.model, task: task, count: heldOut, samples: samples, perSeries: perSeries,
                                         settings: sampling.applied(to: loaded.manifest.sampler), seed: 12345) { stderrLine($0) }
        try output.print(report) { describe(report, path: loaded.path, task: taskName) }
    }

    func describe(_ report: CalibrationReport, path: String, task: String) -> String {
        var text = "calibration of \(path) (\(task)) on \(heldOut) held-out simulations, \(samples) samples each:\n"
        for e in report.entries {
            let name = e.name.padding(toLength: max(14, e.name.count), withPad: " ", startingAt: 0)
            text += "  \(name) " + String(format: "50%%: %.3f   90%%: %.3f   (%d cases)\n", e.coverage50, e.coverage90, e.cases)
        }
        return text + String(format: "worst deviation from nominal: %.3f; %.0f s\n", report.worstDeviation, report.seconds)
    }
}
