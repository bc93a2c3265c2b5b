import ArgumentParser
import Foundation
import SbiArchive

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a model archive's manifest summary and its SHA-256 pin.")

    @Argument(help: "The model archive (PATH or PATH@sha256:HEX).")
    var model: String

    func run() throws {
        let loaded = try ModelArchive.load(model)
        let m = loaded.manifest, p = m.provenance
        print("model:     \(loaded.path)")
        print("sha256:    \(loaded.sha256)")
        print("pin:       \(loaded.path)@sha256:\(loaded.sha256)")
        print("format:    \(m.format) version \(m.formatVersion), written by sbiwatch \(p.sbiwatchVersion)")
        print("variables:")
        for line in ModelCard.variableLines(m.spec) { print("  " + line.replacingOccurrences(of: "`", with: "")) }
        print("network:   \(m.network.preset.rawValue) (\(m.transformer.layers) layers, \(m.transformer.heads) heads, width \(m.transformer.width)), \(m.network.mask.rawValue) mask, \(m.network.sde.name) SDE, \(m.network.resolvedParametrisation.rawValue) parametrisation")
        print("sampler:   \(m.sampler.method.rawValue), \(m.sampler.steps) steps\(m.sampler.sigmaHigh.map { ", levels from \($0)" } ?? "")")
        print("training:  \(p.task.map { "task \($0)" } ?? "simulation file \(p.simulationsSHA256 ?? "?")"), \(p.simulations) simulations, seed \(p.seed)")
        print("           \(p.training.steps)/\(p.training.stepsPlanned) steps, batch \(p.training.batchSize), \(Int(p.training.seconds.rounded())) s, best validation loss \(p.training.bestValidationLoss) at step \(p.training.bestValidationStep)\(p.training.stoppedEarly ? " (stopped early)" : "")")
        for (k, c) in p.trainCommands.enumerated() { print(k == 0 ? "rebuild:   \(c)" : "           \(c)") }
        if let c = p.calibrationCommand { print("           \(c)") }
        print("calibration:")
        for line in ModelCard.calibrationLines(loaded.calibration) { print(line.isEmpty ? "" : "  " + line) }
        if let r = loaded.reference { print("reference: \(r.rows.count) prior predictive simulations (\(r.origin))") }
    }
}
