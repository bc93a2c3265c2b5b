// The NetCDF training-set layout ("sbiwatch-training-1") that any simulator can write:
//
//   dimensions:  simulation = N ;  time = G ;  <name>_index = K (for a vector variable of K values)
//   variables:   double time(time) ;                 evenly spaced dense grid, with `units`
//                double <param>(simulation) ;        a scalar, attribute sbiwatch_kind = "parameter" or "data"
//                double <vec>(simulation, <vec>_index) ;
//                double <series>(simulation, time) ; a time series or function-valued parameter on the grid;
//                                                    optional attribute sbiwatch_max_points (default 20)
//                any model variable may carry valid_range = lo, hi (the prior's support; reports warn outside it)
//   global:      sbiwatch_format = "sbiwatch-training-1" ;
//                sbiwatch_edges = "a->b, theta[0]->x[0], ..." (the dependency DAG by variable or element name)
//
// Every variable carrying sbiwatch_kind is a model variable, in file order; others are ignored.
import Foundation
import SbiCore
import SbiModel
import SbiNetCDF

public enum TrainingSet {
    public static let format = "sbiwatch-training-1"

    /// Writes dense simulation rows of `spec` (all time-indexed variables must share one axis).
    public static func write(spec: ModelSpec, rows: [[Double]], to path: String) throws {
        let axes = spec.variables.compactMap(\.time)
        if let first = axes.first, axes.contains(where: { $0.lower != first.lower || $0.upper != first.upper || $0.grid != first.grid }) {
            throw SbiError(.usage, "the training-set layout needs one shared time grid for every time-indexed variable")
        }
        let tmp = AtomicFile.temporaryPath(for: path)
        do {
            let w = try NetCDFWriter(path: tmp)
            let sim = try w.defineDimension("simulation", length: rows.count)
            var timeDim: Int32 = -1, timeVar: Int32 = -1
            if let axis = axes.first {
                timeDim = try w.defineDimension("time", length: axis.grid)
                timeVar = try w.defineVariable("time", dimensions: [timeDim])
                try w.setAttribute("units", axis.units ?? "1", variable: timeVar)
                try w.setAttribute("long_name", "dense simulation grid", variable: timeVar)
            }
            var ids: [Int32] = []
            for v in spec.variables {
                let dims: [Int32]
                if v.time != nil { dims = [sim, timeDim] }
                else if v.size == 1 { dims = [sim] }
                else { dims = [sim, try w.defineDimension("\(v.name)_index", length: v.size)] }
                let id = try w.defineVariable(v.name, dimensions: dims)
                try w.setAttribute("sbiwatch_kind", v.kind.rawValue, variable: id)
                if let u = v.units { try w.setAttribute("units", u, variable: id) }
                if let axis = v.time { try w.setAttribute("sbiwatch_max_points", [Double(axis.maxPoints)], variable: id) }
                if let noise = v.noise { try w.setAttribute("sbiwatch_noise", noise.text, variable: id) }
                if let s = v.support { try w.setAttribute("valid_range", [s.lower, s.upper], variable: id) }
                ids.append(id)
            }
            try w.setAttribute("sbiwatch_format", format)
            try w.setAttribute("sbiwatch_edges", spec.edges.map { "\(nodeName(spec, $0.parent))->\(nodeName(spec, $0.child))" }.joined(separator: ", "))
            try w.endDefinitions()
            if let axis = axes.first { try w.write((0..<axis.grid).map { axis.gridTime($0) }, variable: timeVar) }
            let offsets = spec.denseOffsets
            for (k, v) in spec.variables.enumerated() {
                var values: [Double] = []
                values.reserveCapacity(rows.count * v.denseWidth)
                for r in rows { values.append(contentsOf: r[offsets[k]..<(offsets[k] + v.denseWidth)]) }
                try w.write(values, variable: ids[k])
            }
            try w.close()
            try AtomicFile.commit(tmp, to: path)
        } catch {
            unlink(tmp)
            throw error
        }
    }

    static func nodeName(_ spec: ModelSpec, _ node: Int) -> String {
        let v = spec.variables[spec.variableOfNode[node]]
        return v.size == 1 ? v.name : spec.label(ofNode: node)
    }

    /// Reads a training set: the model spec it declares and its dense rows.
    public static func read(path: String) throws -> (spec: ModelSpec, rows: [[Double]]) {
        let f = try NetCDFReader(path: path)
        defer { f.close() }
        return try TrainingSetReader(file: f, path: path).read()
    }
}

/// One open training-set file, read part by part.
struct TrainingSetReader {
    let file: NetCDFReader
    let path: String

    func bad(_ what: String, _ hint: String = "see `man sbiwatch`, TRAINING SETS, for the layout") -> SbiError {
        SbiError(.badInput, what, hint: hint, subject: path)
    }

    func read() throws -> (spec: ModelSpec, rows: [[Double]]) {
        guard try file.textAttribute("sbiwatch_format") == TrainingSet.format else {
            throw bad("the global attribute sbiwatch_format is not \"\(TrainingSet.format)\"", "write it, with the layout of `man sbiwatch`, TRAINING SETS")
        }
        guard let simDim = file.dimensions.first(where: { $0.name == "simulation" }) else { throw bad("there is no dimension `simulation`") }
        let axis = try timeAxis()
        var variables: [VariableSpec] = [], columns: [[Double]] = []
        for v in file.variables {
            guard let spec = try variable(v, axis: axis) else { continue }
            let values = try file.doubles(v)
            guard values.count == simDim.length * spec.denseWidth else {
                throw bad("variable \(v.name) holds \(values.count) values; \(simDim.length) simulations of \(spec.denseWidth) need \(simDim.length * spec.denseWidth)")
            }
            variables.append(spec)
            columns.append(values)
        }
        guard !variables.isEmpty else { throw bad("no variable carries the attribute sbiwatch_kind") }
        guard variables.contains(where: { $0.kind == .parameter }) else { throw bad("no variable has sbiwatch_kind = \"parameter\"") }
        var spec = ModelSpec(variables: variables, edges: [])
        spec.edges = try edges(of: spec)
        let n = simDim.length
        guard n > 0 else { throw bad("the simulation dimension is empty") }
        var rows = [[Double]](repeating: [], count: n)
        for (k, v) in variables.enumerated() {
            let w = v.denseWidth
            for r in 0..<n { rows[r].append(contentsOf: columns[k][(r * w)..<((r + 1) * w)]) }
        }
        return (spec, rows)
    }

    /// The dense grid of the variable `time`, when there is one: increasing and evenly spaced.
    func timeAxis() throws -> TimeAxis? {
        guard let tv = file.variable(named: "time") else { return nil }
        let t = try file.doubles(tv)
        guard t.count >= 2 else { throw bad("the time grid needs at least 2 points") }
        let step = (t.last! - t.first!) / Double(t.count - 1)
        let tolerance = 1e-6 * max(1, abs(step) * Double(t.count))
        let even = zip(t.indices, t).allSatisfy { i, x in abs(x - (t.first! + step * Double(i))) <= tolerance }
        guard step > 0, t.allSatisfy({ $0.isFinite }), even else {
            throw bad("the variable time must be an increasing, evenly spaced grid")
        }
        let units = try file.textAttribute("units", of: tv)
        return TimeAxis(lower: t.first!, upper: t.last!, grid: t.count, maxPoints: 20, units: units == "1" ? nil : units)
    }

    /// The model variable a NetCDF variable declares with sbiwatch_kind; nil for other variables.
    func variable(_ v: NCVariable, axis: TimeAxis?) throws -> VariableSpec? {
        guard let kindText = try file.textAttribute("sbiwatch_kind", of: v) else { return nil }
        guard let kind = VariableKind(rawValue: kindText) else {
            throw bad("variable \(v.name) has sbiwatch_kind \"\(kindText)\"; it must be \"parameter\" or \"data\"")
        }
        guard v.dimensions.first?.name == "simulation" else {
            throw bad("variable \(v.name) must have `simulation` as its first dimension")
        }
        let units = try file.textAttribute("units", of: v)
        var spec: VariableSpec
        if v.dimensions.count == 2 && v.dimensions[1].name == "time" {
            guard var a = axis else { throw bad("variable \(v.name) uses `time` but there is no time coordinate variable") }
            if let mp = try file.numericAttribute("sbiwatch_max_points", of: v)?.first {
                guard mp.isFinite, mp >= 1, mp <= Double(a.grid), mp == mp.rounded() else {
                    throw bad("variable \(v.name): sbiwatch_max_points is \(mp); it must be a whole number in 1...\(a.grid) (the grid's points)")
                }
                a.maxPoints = Int(mp)
            }
            spec = VariableSpec(name: v.name, kind: kind, time: a, units: units)
        } else if v.dimensions.count == 1 {
            spec = VariableSpec(name: v.name, kind: kind, size: 1, units: units)
        } else if v.dimensions.count == 2 {
            spec = VariableSpec(name: v.name, kind: kind, size: v.dimensions[1].length, units: units)
        } else {
            throw bad("variable \(v.name) has \(v.dimensions.count) dimensions; use (simulation), (simulation, index) or (simulation, time)")
        }
        if let text = try file.textAttribute("sbiwatch_noise", of: v) {
            guard let noise = ObservationNoise(text: text) else {
                throw bad("variable \(v.name): sbiwatch_noise is \"\(text)\"; it must be \"additive STD\" or \"lognormal STD\" (STD a number in 0...1e6)")
            }
            spec.noise = noise
        }
        if let r = try file.numericAttribute("valid_range", of: v) {
            guard r.count == 2, r[0] < r[1] else { throw bad("variable \(v.name): valid_range must be two increasing numbers (the prior's support)") }
            spec.support = Support(r[0], r[1])
        }
        return spec
    }

    /// The edges of sbiwatch_edges ("a->b, theta[0]->x[0]"), by variable or element name; a whole
    /// vector name stands for all its elements.
    func edges(of spec: ModelSpec) throws -> [ModelSpec.Edge] {
        var nodeByName: [String: Int] = [:]
        for (k, v) in spec.variables.enumerated() {
            for (e, node) in spec.nodes(of: k).enumerated() {
                nodeByName[v.size == 1 ? v.name : "\(v.name)[\(e)]"] = node
            }
        }
        func resolve(_ n: String) throws -> [Int] {
            if let node = nodeByName[n] { return [node] }
            if let k = spec.variables.firstIndex(where: { $0.name == n }) { return Array(spec.nodes(of: k)) }
            throw bad("sbiwatch_edges names \"\(n)\", which is not a model variable")
        }
        var edges: [ModelSpec.Edge] = []
        let edgeText = try file.textAttribute("sbiwatch_edges") ?? ""
        for item in edgeText.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let parts = item.components(separatedBy: "->").map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { throw bad("sbiwatch_edges item \"\(item)\" is not PARENT->CHILD") }
            for p in try resolve(parts[0]) { for c in try resolve(parts[1]) { edges.append(.init(p, c)) } }
        }
        return edges
    }
}
