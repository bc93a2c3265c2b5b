// Deliberately misspecified observations of the built-in tasks, for `bench misspecification`:
// each kind turns a dense simulation row into data the model was not trained on.
import Foundation
import SbiCore
import SbiModel

public struct MisspecificationKind: Sendable {
    public var name: String
    public var description: String
    /// The dense row with its data changed (parameters untouched).
    public var apply: @Sendable ([Double], inout RandomStream) -> [Double]

    public init(name: String, description: String, apply: @escaping @Sendable ([Double], inout RandomStream) -> [Double]) {
        self.name = name; self.description = description; self.apply = apply
    }
}

public enum Misspecification {
    /// The kinds tested for a task (at least four for each time-series task).
    public static func kinds(for task: any SimulationTask) -> [MisspecificationKind] {
        let spec = task.spec
        switch task.name {
        case "sird":
            return [delay(spec, 3, units: "days"),
                    noise(spec, "5x overdispersed noise (log-normal sd 0.25 instead of 0.05)", multiplicative: true, extra: (0.25 * 0.25 - 0.05 * 0.05).squareRoot()),
                    scale(spec, "infected", 100), swap(spec, "infected", "dead"),
                    MisspecificationKind(name: "no_recoveries", description: "recoveries never reported (recovered is 0 throughout)") { row, _ in
                        set(row, spec, "recovered") { _ in 0 } }]
        case "lotka_volterra_irregular":
            return [noise(spec, "3x the observation noise (sd 0.3 instead of 0.1)", multiplicative: false, extra: (0.09 - 0.01).squareRoot()),
                    scale(spec, "prey", 100), swap(spec, "prey", "predator"), delay(spec, 1.5, units: "time units")]
        default:
            let x = spec.variables.firstIndex { $0.kind == .data }!
            let n = spec.variables[x].size
            let noisier = task.name == "gaussian_linear" ? [noise(spec, "5x the observation noise", multiplicative: false, extra: nil)] : []
            return noisier + [scale(spec, spec.variables[x].name, 100),
                    MisspecificationKind(name: "halves_swapped", description: "the two halves of \(spec.variables[x].name) swapped") { row, _ in
                        var r = row
                        let o = spec.denseOffsets[x], h = n / 2
                        for e in 0..<h { r.swapAt(o + e, o + h + e) }
                        return r
                    }]
        }
    }

    /// Every value of data variable `name` mapped by `f` (dense grid).
    static func set(_ row: [Double], _ spec: ModelSpec, _ name: String, _ f: (Double) -> Double) -> [Double] {
        var r = row
        let v = spec.variableIndex(named: name)!, o = spec.denseOffsets[v]
        for k in o..<(o + spec.variables[v].denseWidth) { r[k] = f(r[k]) }
        return r
    }

    static func dataVariables(_ spec: ModelSpec) -> [Int] { spec.variables.indices.filter { spec.variables[$0].kind == .data } }

    static func scale(_ spec: ModelSpec, _ name: String, _ factor: Double) -> MisspecificationKind {
        MisspecificationKind(name: "\(name)_scaled_\(Int(factor))", description: "\(name) in the wrong units (x\(Int(factor)))") { row, _ in
            set(row, spec, name) { $0 * factor }
        }
    }

    static func swap(_ spec: ModelSpec, _ a: String, _ b: String) -> MisspecificationKind {
        MisspecificationKind(name: "\(a)_\(b)_swapped", description: "\(a) and \(b) swapped") { row, _ in
            var r = row
            let va = spec.variableIndex(named: a)!, vb = spec.variableIndex(named: b)!
            let oa = spec.denseOffsets[va], ob = spec.denseOffsets[vb]
            for k in 0..<spec.variables[va].denseWidth { r.swapAt(oa + k, ob + k) }
            return r
        }
    }

    /// Every series reported `lag` late: the value at t is the simulation's at max(t - lag, start).
    static func delay(_ spec: ModelSpec, _ lag: Double, units: String) -> MisspecificationKind {
        MisspecificationKind(name: "delayed_\(String(format: "%g", lag))", description: "every series reported \(String(format: "%g", lag)) \(units) late") { row, _ in
            var r = row
            for v in dataVariables(spec) {
                guard let axis = spec.variables[v].time else { continue }
                let o = spec.denseOffsets[v], grid = Array(row[o..<(o + axis.grid)])
                for k in 0..<axis.grid { r[o + k] = axis.interpolate(grid, at: max(axis.gridTime(k) - lag, axis.lower)) }
            }
            return r
        }
    }

    /// More observation noise on every data value: additive N(0, extra^2), or log-normal with log-sd
    /// `extra`; nil extra: the benchmark tasks' deviation from the parameters scaled by 5.
    static func noise(_ spec: ModelSpec, _ description: String, multiplicative: Bool, extra: Double?) -> MisspecificationKind {
        MisspecificationKind(name: multiplicative ? "noise_lognormal_x5" : extra == nil ? "noise_x5" : "noise_x3", description: description) { row, rng in
            var r = row
            let theta = spec.variables.indices.first { spec.variables[$0].kind == .parameter }!
            for v in dataVariables(spec) {
                let o = spec.denseOffsets[v]
                for k in 0..<spec.variables[v].denseWidth {
                    if let extra {
                        r[o + k] = multiplicative ? r[o + k] * exp(extra * rng.normal()) : r[o + k] + extra * rng.normal()
                    } else {
                        let mean = row[spec.denseOffsets[theta] + k % spec.variables[theta].denseWidth]
                        r[o + k] = mean + 5 * (row[o + k] - mean)
                    }
                }
            }
            return r
        }
    }
}
