// README.md of an archive (the model card), and the variable and calibration tables `inspect` prints.
import Foundation
import SbiChecks
import SbiModel

public enum ModelCard {
    /// The model card: what the model is for, its variables, network, training, calibration and
    /// the exact commands that rebuild it.
    static func text(_ m: Manifest, calibration: ModelCalibration?) -> String {
        let p = m.provenance
        var s = "# sbiwatch model: \(p.task ?? "trained from simulations")\n\n"
        s += "## Intended use\n\n" + intendedUse(m) + "\n\n## Variables\n\n"
        for line in variableLines(m.spec) { s += "- \(line)\n" }
        s += "\n## Network and training\n\n"
        s += "\(m.network.preset.rawValue) transformer (\(m.transformer.layers) layers, \(m.transformer.heads) heads), "
        s += "\(m.network.mask.rawValue) attention mask, \(m.network.sde.name.uppercased()) SDE"
        s += m.network.parametrisation == .edm ? ", EDM preconditioning (Karras et al. 2022).\n" : ".\n"
        s += "Default sampler: \(m.sampler.method.rawValue), \(m.sampler.steps) steps"
        s += (m.sampler.usesNoiseLevels ? ", noise levels \(m.sampler.sigmaHigh.map { "from \(g(m.network.sde.scaledStd(1))) in one step to \(g($0)), then " } ?? "")down to \(g(m.sampler.sigmaLow))" : "") + ".\n\n"
        s += "Trained on \(p.simulations) simulations, seed \(p.seed), \(p.training.steps) of \(p.training.stepsPlanned) steps "
        s += "(batch \(p.training.batchSize)) in \(Int(p.training.seconds.rounded())) s; best validation loss "
        s += "\(p.training.bestValidationLoss) at step \(p.training.bestValidationStep).\n\n## Calibration\n\n"
        s += calibrationLines(calibration).joined(separator: "\n") + "\n\n"
        s += "## Rebuild\n\nWith sbiwatch \(p.sbiwatchVersion):\n\n"
        for c in p.trainCommands { s += "    \(c)\n" }
        if let c = p.calibrationCommand { s += "    \(c)\n" }
        return s
    }

    static func intendedUse(_ m: Manifest) -> String {
        let parameters = m.spec.variables.filter { $0.kind == .parameter }.map(\.name).joined(separator: ", ")
        let data = m.spec.variables.filter { $0.kind == .data }.map(\.name).joined(separator: ", ")
        let origin = m.provenance.task.map { "the built-in `\($0)` simulator" } ?? "the simulator that wrote its training set"
        return "Amortized posterior inference of \(parameters) from observations of \(data), for data produced by \(origin) "
            + "(or a process it describes well) within the ranges below. Every result is checked against the model: "
            + "observations unlike its simulations, or that its posterior cannot reproduce, make the report's verdict "
            + "`caution` or `unreliable`. It is not meant for data outside the time domains below."
    }

    /// One line per variable: kind, shape, time domain, prior range and units.
    public static func variableLines(_ spec: ModelSpec) -> [String] {
        spec.variables.map { v in
            var s = "`\(v.name)`: \(v.kind.rawValue), "
            if let axis = v.time {
                let domain = "on [\(g(axis.lower)), \(g(axis.upper))]\(axis.units.map { " " + $0 } ?? "")"
                s += v.kind == .parameter
                    ? "a function of time \(domain), queried at up to \(axis.maxPoints) times directly (denser grids interpolated)"
                    : "a time series \(domain), up to \(axis.maxPoints) observation or forecast times per file answered directly"
                if let noise = v.noise { s += "; observation noise \(noise.text)" }
            } else {
                s += v.size == 1 ? "a scalar" : "a vector of \(v.size) values"
            }
            if let sup = v.support { s += "; prior range [\(g(sup.lower)), \(g(sup.upper))]" }
            if let u = v.units { s += "; units \(u)" }
            return s
        }
    }

    /// The calibration table (or why there is none).
    public static func calibrationLines(_ c: ModelCalibration?) -> [String] {
        guard let c else { return ["No calibration stored: run `sbiwatch calibrate` to measure it."] }
        guard c.measured else { return ["Calibration skipped: \(c.note ?? "no reason recorded")."] }
        var lines = ["Measured on \(c.cases) held-out simulations (\(c.source)), \(c.draws) posterior draws and \(c.replicates) predictive replicates each, \(c.sampler) sampler with \(c.samplerSteps) steps\(evaluations(c))\(c.samplerSigmaLow.map { low in ", noise levels\(c.samplerSigmaHigh.map { " from \(g($0))" } ?? "") down to \(g(low))" } ?? ""), in \(Int(c.seconds.rounded())) s.", ""]
        lines.append("| parameter | SBC | max ECDF dev. | cov. 50% | 80% | 90% | 95% | mean z | sd z | contraction |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        let failed = Set(c.failed().map(\.name))
        for e in c.parameters {
            let cov = ModelCalibration.levels.map { String(format: "%.3f", e.coverage["\($0)"] ?? .nan) }.joined(separator: " | ")
            let sbc = failed.contains(e.name) ? "FAIL" : e.passed ? "pass" : "outside 95%"
            lines.append("| \(e.name) | \(sbc) | \(String(format: "%.3f", e.sbc.maxDeviation)) | \(cov) | "
                         + String(format: "%.2f | %.2f | %.2f |", e.meanZScore, e.sdZScore, e.contraction))
        }
        let se = c.parameters.first?.coverageStandardError["90"] ?? 0
        lines.append("")
        lines.append("SBC: the ECDF of the ranks inside its simultaneous 95% band (pass) or not (outside 95%). FAIL: the ECDF outside the band at level \(String(format: "%.4f", c.familyLevel)) per scalar, or a coverage whose two-sided binomial p-value is below \(String(format: "%.2g", c.coverageLevel)) (together: a calibrated model fails anywhere with probability at most 5%); reports caution on those parameters.")
        for e in c.parameters where failed.contains(e.name) { lines.append("- " + c.failure(e)) }
        lines.append("Coverage standard error at 90%: \(String(format: "%.3f", se)) (binomial, \(c.cases) cases).")
        if let worst = c.worstCoverageDeviation {
            lines.append("Worst coverage deviation from nominal: \(String(format: "%.3f", worst.deviation)) (\(worst.name), \(worst.level)% intervals).")
        }
        lines.append(c.verdictNull.map { "Verdicts: a file's smallest check p-value is ranked among those of these \($0.count) held-out cases." }
                     ?? "Verdicts: Šidák's adjustment (this pass did not record the held-out cases' checks; recalibrate to rank files among them).")
        return lines
    }

    static func g(_ x: Double) -> String { String(format: "%g", x) }

    /// " (K network evaluations per sample)" for a sampler this version knows.
    static func evaluations(_ c: ModelCalibration) -> String {
        guard let method = SamplerSettings.Method(rawValue: c.sampler) else { return "" }
        return " (\(SamplerSettings(method: method, steps: c.samplerSteps).networkEvaluations) network evaluations per sample)"
    }
}
