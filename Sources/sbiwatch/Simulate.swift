import ArgumentParser
import Foundation
import SbiCore
import SbiNetCDF
import SbiTasks

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write simulations of a built-in task as a NetCDF training set.")

    @Option(help: "Built-in simulator (\(TaskRegistry.allNames.joined(separator: ", "))).")
    var task: String

    @Option(help: "Number of simulations.")
    var count: Int = 1000

    @Flag(name: .customLong("training-set"), help: "Write a training set (the layout `train --simulations` reads).")
    var trainingSet = false

    @Option(help: "Seed of the simulations.")
    var seed: UInt64 = 0

    @Option(help: "Where to write the NetCDF file.")
    var out: String

    func validate() throws {
        guard trainingSet else { throw ValidationError("only --training-set output exists so far") }
        guard count >= 1 else { throw ValidationError("--count must be positive") }
    }

    func run() throws {
        let t = try TaskRegistry.task(named: task)
        let rows = t.simulate(count: count, key: RandomKey(seed: seed).split(100))
        try TrainingSet.write(spec: t.spec, rows: rows, to: out)
        stderrLine("wrote \(count) simulations of \(task) to \(out)")
    }
}
