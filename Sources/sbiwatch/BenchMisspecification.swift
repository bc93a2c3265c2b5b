import ArgumentParser
import Foundation
import SbiArchive
import SbiChecks
import SbiCore
import SbiModel
import SbiTasks

/// Warning rates of each check and of the verdict on well-specified held-out simulations, and
/// detection rates on deliberately misspecified ones, observed the way `simulate --out` files are.
struct BenchMisspecification: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "misspecification",
        abstract: "False-alarm rates of the per-file checks on well-specified simulations, and detection rates on misspecified ones.")

    @Argument(help: ArgumentHelp("The model archive (trained on a built-in task, with calibration.json).", valueName: "model"))
    var model: String

    @OptionGroup var output: BenchOutput
    @OptionGroup var threading: BenchThreads

    @Option(name: .customLong("well-specified"), help: "Well-specified held-out simulations.")
    var wellSpecified: Int = 200

    @Option(name: .customLong("per-kind"), help: "Simulations per misspecification kind.")
    var perKind: Int = 100

    @Option(help: "Posterior draws per case (the predictive check uses the first 100).")
    var samples: Int = 100

    @Option(help: "Seed of the simulations (apart from training and calibration).")
    var seed: UInt64 = 777

    @Option(parsing: .upToNextOption, help: "Measure only these kinds (well_specified and the task's kinds; default: all).")
    var kinds: [String] = []

    struct Row: Encodable {
        var kind: String
        var description: String
        var cases: Int
        /// check name -> share of cases it flagged
        var flagged: [String: Double]
        var anyCheck: Double
        /// The data checks' combined p below 0.05 (the verdict without the model's own cautions).
        var dataVerdictNotOK: Double
        /// The same with the checks combined by Šidák's 1 - (1 - min p)^k, for comparison.
        var sidakNotOK: Double
        var verdictNotOK: Double
        var verdictUnreliable: Double
        enum CodingKeys: String, CodingKey {
            case kind, description, cases, flagged
            case anyCheck = "any_check", dataVerdictNotOK = "data_verdict_not_ok", sidakNotOK = "sidak_not_ok"
            case verdictNotOK = "verdict_not_ok"
            case verdictUnreliable = "verdict_unreliable"
        }
    }

    func validate() throws {
        guard wellSpecified >= 20, perKind >= 10, samples >= 20 else {
            throw ValidationError("--well-specified >= 20, --per-kind >= 10 and --samples >= 20 needed")
        }
    }

    func run() throws {
        let loaded = try ModelArchive.load(model)
        guard let taskName = loaded.manifest.provenance.task else {
            throw SbiError(.usage, "\(loaded.path) was trained from a simulation file; this bench simulates cases with a built-in task")
        }
        guard loaded.calibration?.measured == true, loaded.reference != nil else {
            throw SbiError(.usage, "\(loaded.path) carries no calibration or reference simulations",
                           hint: "add them with `sbiwatch calibrate \(loaded.path) --out NEW.sbim`")
        }
        let task = try TaskRegistry.task(named: taskName)
        let well = MisspecificationKind(name: "well_specified", description: "simulations of the task itself") { row, _ in row }
        let all = [well] + Misspecification.kinds(for: task)
        if let unknown = kinds.first(where: { k in !all.contains { $0.name == k } }) {
            throw SbiError(.usage, "unknown misspecification kind '\(unknown)' for \(taskName)",
                           hint: "choose from: \(all.map(\.name).joined(separator: ", "))")
        }
        var rows: [Row] = []
        for (k, kind) in all.enumerated() where kinds.isEmpty || kinds.contains(kind.name) {
            rows.append(try measure(kind, index: k, count: k == 0 ? wellSpecified : perKind, task: task, loaded: loaded))
        }
        try output.print(rows) { describe(rows, path: loaded.path) }
    }

    func measure(_ kind: MisspecificationKind, index: Int, count: Int, task: any SimulationTask, loaded: LoadedModel) throws -> Row {
        let key = RandomKey(seed: seed).split(UInt64(index))
        var flagged: [String: Int] = [:], any = 0, dataNotOK = 0, sidakNotOK = 0, notOK = 0, unreliable = 0
        for c in 0..<count {
            var rng = RandomStream(key: key.split(UInt64(c)))
            let row = kind.apply(task.sampleJoint(&rng), &rng)
            let plan = try Self.fileQuery(row, task: task, spec: loaded.model.spec, rng: &rng)
            let draws = plan.complete(try Sampler.sample(loaded.model, tokens: plan.tokens, plan.conditioning, count: samples,
                                                         settings: loaded.manifest.sampler, key: key.split(1_000_000 + UInt64(c)),
                                                         threads: threading.threads),
                                      noiseKey: key.split(1_000_000 + UInt64(c)).split(QueryPlan.interpolationNoiseStream))
            let checks = try FileChecks.run(loaded.trust, plan: plan, draws: draws, settings: loaded.manifest.sampler,
                                            key: key.split(2_000_000 + UInt64(c)), threads: threading.threads)
            for check in checks.checks where check.flagged { flagged[check.name, default: 0] += 1 }
            if checks.checks.contains(where: \.flagged) { any += 1 }
            if checks.verdict.combinedPValue.map({ $0 < Verdict.cautionLevel }) ?? true { dataNotOK += 1 }
            let ps = checks.checks.compactMap(\.pValue)
            if ps.min().map({ Verdict.sidak(smallest: $0, count: ps.count) < Verdict.cautionLevel }) ?? true { sidakNotOK += 1 }
            if checks.verdict.level != .ok { notOK += 1 }
            if checks.verdict.level == .unreliable { unreliable += 1 }
            if (c + 1) % 25 == 0 || c == count - 1 { stderrLine("misspecification: \(kind.name) \(c + 1)/\(count)") }
        }
        let n = Double(count)
        return Row(kind: kind.name, description: kind.description, cases: count, flagged: flagged.mapValues { Double($0) / n },
                   anyCheck: Double(any) / n, dataVerdictNotOK: Double(dataNotOK) / n, sidakNotOK: Double(sidakNotOK) / n,
                   verdictNotOK: Double(notOK) / n,
                   verdictUnreliable: Double(unreliable) / n)
    }

    /// The query of a file of `task` observed at the times `simulate --out` uses: every series at
    /// its design's times, every scalar parameter, functions on their trained grid.
    /// The query of a file simulated from `row`, against the model's spec (its trained density, which
    /// may differ from today's task).
    static func fileQuery(_ row: [Double], task: any SimulationTask, spec: ModelSpec, rng: inout RandomStream) throws -> QueryPlan {
        let times = SyntheticObservation.observationTimes(for: task, rng: &rng)
        var noise = RandomStream(seed: rng.nextUInt64())
        return try Calibration.query(row, spec: spec, noise: &noise) { variable, _ in times[variable.name] ?? [] }.0
    }

    func describe(_ rows: [Row], path: String) -> String {
        let names = Array(Set(rows.flatMap { $0.flagged.keys })).sorted()
        var text = "misspecification checks of \(path) (\(samples) posterior draws per case; a check flags below p = \(Verdict.checkThreshold); the data verdict is not ok below combined p = \(Verdict.cautionLevel), its p-values combined as the model's calibration allows (held-out or Šidák), and Šidák's beside it; the verdict adds the model's own cautions):\n"
        text += "  kind                        cases  " + names.map { $0.padding(toLength: max(12, $0.count), withPad: " ", startingAt: 0) }.joined(separator: " ") + "  any check  data verdict!=ok  Šidák!=ok  verdict!=ok  unreliable\n"
        for r in rows {
            text += "  " + r.kind.padding(toLength: 26, withPad: " ", startingAt: 0) + String(format: "%7d  ", r.cases)
            text += names.map { String(format: "%.3f", r.flagged[$0] ?? 0).padding(toLength: max(12, $0.count), withPad: " ", startingAt: 0) }.joined(separator: " ")
            text += String(format: "  %.3f      %.3f                %.3f      %.3f        %.3f\n", r.anyCheck, r.dataVerdictNotOK, r.sidakNotOK,
                           r.verdictNotOK, r.verdictUnreliable)
        }
        if let w = rows.first {
            let se = (0.05 * 0.95 / Double(w.cases)).squareRoot()
            text += String(format: "standard error of a rate near 5%% on %d well-specified cases: %.3f\n", w.cases, se)
        }
        return text
    }
}
