// Realistic observation files from the built-in simulators (`sbiwatch simulate --out FILE.nc`),
// in the sbiwatch-1 convention, for demos and tests:
// - sird: infected reported every 2 days over days 0..36, recovered and dead every 3 days from day 1;
//   times as "days since 2026-10-01"; a 14-day forecast query of infected (days 37..50) and a daily
//   beta(t) grid (days 0..50).
// - lotka_volterra_irregular: prey and predator at 20 random times each on [0, 15], prey with a
//   missing stretch [6, 9]; queries of both series on a 0.25 grid.
// - hodgkin_huxley: the 7 voltage features of a recorded neuron; the energy token is not measured
//   (left out, its true value an attribute), so a budget on it is a constraint (--constraint).
// - benchmark tasks: x as a vector variable (the posterior query).
// A fraction of values (--missing) is replaced by the _FillValue -999. The true parameters are
// global attributes true_NAME (ignored by `process`).
import Foundation
import SbiCore
import SbiModel
import SbiNetCDF

public enum SyntheticObservation {
    public static let fillValue = -999.0

    struct Design {
        var observed: [String: [Double]] = [:]   // series -> observation times (model units)
        var queries: [String: [Double]] = [:]    // variable -> query times
        var timeUnits: String? = nil
        var dropWindow: (String, Double, Double)? = nil
        /// Data variables not measured: left out of the file, their true values attributes true_NAME.
        var unmeasured: Set<String> = []
    }

    /// The observation times of a file of `task` (series name -> times), as `write` draws them.
    public static func observationTimes(for task: any SimulationTask, rng: inout RandomStream) -> [String: [Double]] {
        var d = design(for: task, rng: &rng)
        if let (name, lo, hi) = d.dropWindow { d.observed[name] = d.observed[name]!.filter { $0 < lo || $0 > hi } }
        return d.observed
    }

    static func design(for task: any SimulationTask, rng: inout RandomStream) -> Design {
        var d = Design()
        switch task.name {
        case "sird":
            d.observed["infected"] = stride(from: 0.0, through: 36, by: 2).map { $0 }
            d.observed["recovered"] = stride(from: 1.0, through: 36, by: 3).map { $0 }
            d.observed["dead"] = stride(from: 1.0, through: 36, by: 3).map { $0 }
            d.queries["infected"] = (37...50).map(Double.init)
            d.queries["beta"] = (0...50).map(Double.init)
            d.timeUnits = "days since 2026-10-01"
        case "lotka_volterra_irregular":
            for s in ["prey", "predator"] { d.observed[s] = (0..<20).map { _ in (rng.uniform(0, 15) * 100).rounded() / 100 }.sorted() }
            d.dropWindow = ("prey", 6, 9)
            let grid = stride(from: 0.0, through: 15, by: 0.25).map { $0 }
            d.queries["prey"] = grid; d.queries["predator"] = grid
        case "hodgkin_huxley":
            d.unmeasured = ["energy"]
        default:
            for v in task.spec.variables where v.kind == .data {
                if let axis = v.time {
                    let count = min(axis.maxPoints, TimeAxis.filePoints)
                    d.observed[v.name] = (0..<count).map { _ in rng.uniform(axis.lower, axis.upper) }.sorted()
                }
            }
        }
        return d
    }

    /// Writes one simulated observation file; returns the true values of the scalar parameters and
    /// of the data values left unmeasured (the energy of hodgkin_huxley).
    @discardableResult
    public static func write(task: any SimulationTask, to path: String, seed: UInt64, missing: Double,
                             format: NetCDFWriter.Format = .netcdf4Classic, modelName: String?,
                             constraints: [String] = []) throws -> [(String, Double)] {
        guard missing >= 0, missing < 1 else { throw SbiError(.usage, "--missing must be in [0, 1)") }
        var rng = RandomStream(key: RandomKey(seed: seed).split(7))
        let spec = task.spec
        let row = task.sampleJoint(&rng)
        var design = design(for: task, rng: &rng)
        if let (name, lo, hi) = design.dropWindow { design.observed[name] = design.observed[name]!.filter { $0 < lo || $0 > hi } }
        let offsets = spec.denseOffsets
        var truth: [(String, Double)] = []
        let tmp = AtomicFile.temporaryPath(for: path)
        do {
            let w = try NetCDFWriter(path: tmp, format: format)
            var writes: [(Int32, [Double])] = []
            for (k, v) in spec.variables.enumerated() {
                let dense = Array(row[offsets[k]..<(offsets[k] + v.denseWidth)])
                if v.kind == .parameter || design.unmeasured.contains(v.name) {
                    if v.time == nil { for (e, x) in dense.enumerated() { truth.append((v.size == 1 ? v.name : "\(v.name)[\(e)]", x)) } }
                } else {
                    writes += try defineObserved(v, dense: dense, design: design, missing: missing, in: w, rng: &rng)
                }
                if let q = design.queries[v.name] { writes.append((try defineQuery(v, q, design: design, in: w), q)) }
            }
            try w.setAttribute("Conventions", "CF-1.8 sbiwatch-1")
            try w.setAttribute("featureType", "timeSeries")
            try w.setAttribute("title", "simulated \(task.name) observations (seed \(seed), missing fraction \(missing))")
            if let modelName { try w.setAttribute("sbiwatch_model", modelName) }
            if !constraints.isEmpty { try w.setAttribute("sbiwatch_constraints", constraints.joined(separator: "; ")) }
            for (name, x) in truth { try w.setAttribute("true_" + name.replacingOccurrences(of: "[", with: "_").replacingOccurrences(of: "]", with: ""), [x]) }
            try w.endDefinitions()
            for (id, values) in writes { try w.write(values, variable: id) }
            try w.close()
            try AtomicFile.commit(tmp, to: path)
        } catch {
            unlink(tmp)
            throw error
        }
        return truth
    }

    /// Defines an observed data variable (a series with its time coordinate, or fixed values), a
    /// `missing` fraction of its values replaced by the fill value; returns the values to write.
    static func defineObserved(_ v: VariableSpec, dense: [Double], design: Design, missing: Double, in w: NetCDFWriter,
                               rng: inout RandomStream) throws -> [(Int32, [Double])] {
        if let axis = v.time, let times = design.observed[v.name] {
            let dimName = "time_\(v.name)"
            let dim = try w.defineDimension(dimName, length: times.count)
            let tv = try w.defineVariable(dimName, dimensions: [dim])
            try w.setAttribute("standard_name", "time", variable: tv)
            if let u = design.timeUnits { try w.setAttribute("units", u, variable: tv) }
            let id = try w.defineVariable(v.name, dimensions: [dim])
            try w.setAttribute("_FillValue", [fillValue], variable: id)
            try w.setAttribute("coordinates", dimName, variable: id)
            try w.setAttribute("long_name", "observed \(v.name)", variable: id)
            let values = times.map { t -> Double in
                rng.uniform() < missing ? fillValue : axis.observe(dense, at: t, noise: v.noise, &rng)
            }
            return [(tv, times), (id, values)]
        }
        guard v.time == nil else { return [] }
        let dims = v.size == 1 ? [] : [try w.defineDimension("\(v.name)_index", length: v.size)]
        let id = try w.defineVariable(v.name, dimensions: dims)
        try w.setAttribute("_FillValue", [fillValue], variable: id)
        return [(id, dense.map { rng.uniform() < missing ? fillValue : $0 })]
    }

    /// Defines NAME_query_time for the query grid `q` of a variable; returns its id.
    static func defineQuery(_ v: VariableSpec, _ q: [Double], design: Design, in w: NetCDFWriter) throws -> Int32 {
        let name = "\(v.name)_query_time"
        let dim = try w.defineDimension(name, length: q.count)
        let id = try w.defineVariable(name, dimensions: [dim])
        try w.setAttribute("long_name", "times at which to report \(v.name)", variable: id)
        if let u = design.timeUnits { try w.setAttribute("units", u, variable: id) }
        return id
    }
}
