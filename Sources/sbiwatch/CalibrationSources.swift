// Where a calibration pass gets its held-out cases and references: fresh simulations of a built-in
// task (seeded apart from training), or rows of a training set never trained on.
import Foundation
import SbiArchive
import SbiChecks
import SbiCore
import SbiModel
import SbiTasks
import SbiTraining

enum CalibrationSources {
    /// Fresh simulations of `task`: cases from key split 0xCA11B, references from 0x4EF (training uses 100).
    static func task(_ name: String, seed: UInt64, cases: Int?, threads: Int?) throws -> CalibrationPlan {
        let task = try TaskRegistry.task(named: name)
        let key = RandomKey(seed: seed)
        return CalibrationPlan(heldOut: { task.simulate(count: $0, key: key.split(0xCA11B)) }, available: max(1000, cases ?? 0),
                               references: task.simulate(count: CalibrationSize.references, key: key.split(0x4EF)),
                               cases: cases, seed: seed, source: "fresh simulations of task \(name), seed \(seed)", threads: threads)
    }

    /// Held-out rows: the first up to 500 become references, the rest cases.
    static func rows(_ rows: [[Double]], seed: UInt64, cases: Int?, source: String, threads: Int?) throws -> CalibrationPlan {
        let refs = min(CalibrationSize.references, rows.count / 2)
        let held = Array(rows[refs...])
        guard held.count >= 20, refs > OutOfDistribution.neighbours else {
            throw SbiError(.usage, "\(rows.count) held-out simulations are too few for a calibration pass (at least 40 needed)",
                           hint: "give more held-out simulations, or skip calibration with --calibration-cases 0")
        }
        return CalibrationPlan(heldOut: { Array(held.prefix($0)) }, available: held.count, references: Array(rows[..<refs]),
                               cases: cases, seed: seed, source: source, threads: threads)
    }

    /// A simulation file that must fit `spec` (the model's variables).
    static func file(_ path: String, spec: ModelSpec) throws -> [[Double]] {
        let (fileSpec, sims) = try TrainingSet.read(path: path)
        func layout(_ s: ModelSpec) -> [String] {
            s.variables.map { "\($0.name) \($0.kind.rawValue) \($0.size) \($0.time.map { "\($0.lower) \($0.upper) \($0.grid)" } ?? "")" }
        }
        guard layout(fileSpec) == layout(spec) else {
            throw SbiError(.badInput, "\(path) holds simulations of other variables than the model's (\(spec.variables.map(\.name).joined(separator: ", ")))",
                           hint: "give held-out simulations written by the simulator the model was trained on")
        }
        return sims
    }
}
