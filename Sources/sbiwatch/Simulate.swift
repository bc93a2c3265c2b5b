import ArgumentParser
import Foundation
import SbiCore
import SbiNetCDF
import SbiTasks
import SbiTraining

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a simulated observation file, or a training set, from a built-in task.",
        discussion: "Without --training-set: one simulation as an observation file (sbiwatch-1 convention), with query grids, missing values and the true parameters as global attributes true_NAME. With --training-set: --count simulations in the layout `train --simulations` reads.")

    @Option(help: "Built-in simulator (\(TaskRegistry.allNames.joined(separator: ", "))).")
    var task: String

    @Flag(name: .customLong("training-set"), help: "Write a training set (the layout `train --simulations` reads).")
    var trainingSet = false

    @Option(help: "Number of simulations (training sets only).")
    var count: Int = 1000

    @Option(help: "Fraction of observed values written as missing (observation files only).")
    var missing: Double = 0

    @Option(help: "NetCDF format of an observation file: nc4, classic or 64bit.")
    var format: String = "nc4"

    @Option(name: .customLong("model-name"), help: "The sbiwatch_model attribute of an observation file (default: sird for sird, lotka-volterra for lotka_volterra_irregular, else the task name).")
    var modelName: String?

    @Option(name: .customLong("constraint"), help: ArgumentHelp("A constraint written into the observation file's sbiwatch_constraints attribute (repeatable; man sbiwatch, CONSTRAINTS).", valueName: "expr"))
    var constraints: [String] = []

    @Option(help: "Seed of the simulation.")
    var seed: UInt64 = 0

    @Option(help: "Where to write the NetCDF file.")
    var out: String

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be positive") }
        guard missing >= 0, missing < 1 else { throw ValidationError("--missing must be at least 0 and below 1") }
        guard ["nc4", "classic", "64bit"].contains(format) else { throw ValidationError("--format must be nc4, classic or 64bit") }
        guard constraints.isEmpty || !trainingSet else { throw ValidationError("--constraint is for observation files, not training sets") }
        for c in constraints where c.contains(";") || c.contains("\n") {
            throw ValidationError("--constraint takes one expression without ';' or line breaks (give --constraint once per expression): \(c)")
        }
    }

    func run() throws {
        let t = try TaskRegistry.task(named: task)
        if trainingSet {
            let rows = t.simulate(count: count, key: RandomKey(seed: seed).split(100))
            try TrainingSet.write(spec: t.spec, rows: rows, to: out)
            stderrLine("wrote \(count) simulations of \(task) to \(out)")
            return
        }
        let formats: [String: NetCDFWriter.Format] = ["nc4": .netcdf4Classic, "classic": .classic, "64bit": .offset64]
        let name = modelName ?? ["sird": "sird", "lotka_volterra_irregular": "lotka-volterra", "hodgkin_huxley": "hodgkin-huxley"][task] ?? task
        let truth = try SyntheticObservation.write(task: t, to: out, seed: seed, missing: missing, format: formats[format]!, modelName: name,
                                                   constraints: constraints)
        stderrLine("wrote a simulated \(task) observation file to \(out) (true values: \(truth.map { "\($0.0) = \(String(format: "%.4g", $0.1))" }.joined(separator: ", ")))")
    }
}
