// The query of one held-out simulation in the calibration pass, observed the way files are.
import Foundation
import SbiCore
import SbiModel

extension Calibration {
    /// Times at which a function-valued parameter is queried: its trained maximum, evenly spaced.
    public static func functionGrid(_ axis: TimeAxis) -> [Double] {
        let n = max(axis.maxPoints, 2)
        return (0..<n).map { axis.lower + (axis.upper - axis.lower) * Double($0) / Double(n - 1) }
    }

    /// Positions in `functionGrid` whose values are calibrated: four, spread over the domain.
    static func calibratedPositions(count n: Int) -> [Int] {
        Array(Set([1, 3, 5, 7].map { min(n - 1, Int((Double($0) * Double(n - 1) / 8).rounded())) })).sorted()
    }

    /// The query of held-out dense `row`: data series observed the way `seriesDesign` draws them
    /// (fixed data: every value); scalars and functions on `functionGrid` targeted; the targets
    /// calibrated with their true values.
    static func heldOutQuery(_ row: [Double], spec: ModelSpec, rng: inout RandomStream) throws -> (QueryPlan, [Target]) {
        var noise = RandomStream(seed: rng.nextUInt64())
        return try query(row, spec: spec, noise: &noise) { _, axis in seriesDesign(axis, rng: &rng) }
    }

    /// Random observation times of one series, the way files come: a uniformly random number of
    /// times between half the trained maximum and the maximum (at most `TimeAxis.filePoints`), at uniform times over the whole
    /// domain (a third of the series), with an interior gap of 10-30% of the domain left out (a
    /// third), or only over the first 60-90% of the domain (a third: a forecast's history).
    public static func seriesDesign(_ axis: TimeAxis, most given: Int? = nil, rng: inout RandomStream) -> [Double] {
        let most = max(given ?? min(axis.maxPoints, TimeAxis.filePoints), 1), fewest = max(1, most / 2)
        let count = fewest + Int(rng.nextUInt64() % UInt64(most - fewest + 1))
        let width = axis.upper - axis.lower, shape = rng.nextUInt64() % 3
        let end = shape == 2 ? axis.lower + width * rng.uniform(0.6, 0.9) : axis.upper
        let times = (0..<count).map { _ in rng.uniform(axis.lower, end) }.sorted()
        guard shape == 1 else { return times }
        let gap = width * rng.uniform(0.1, 0.3), start = rng.uniform(axis.lower, axis.upper - gap)
        let kept = times.filter { $0 < start || $0 > start + gap }
        return kept.isEmpty ? times : kept
    }

    /// The query of dense `row` with each data series observed at `seriesTimes(variable, axis)`
    /// (fixed data: every value, series with their declared noise restored between grid points, drawn
    /// from `noise`), scalars and functions on `functionGrid` targeted; the calibrated targets with
    /// their true values. `bench misspecification` observes files' designs this way.
    public static func query(_ row: [Double], spec: ModelSpec, noise: inout RandomStream,
                             seriesTimes: (VariableSpec, TimeAxis) -> [Double]) throws -> (QueryPlan, [Target]) {
        let offsets = spec.denseOffsets, nodeOffsets = spec.offsets
        var plan = QueryPlan(spec: spec)
        var targets: [Target] = []
        for (v, variable) in spec.variables.enumerated() {
            let node = nodeOffsets[v]
            if let axis = variable.time {
                let grid = row[offsets[v]..<(offsets[v] + axis.grid)]
                if variable.kind == .data {
                    for t in seriesTimes(variable, axis) {
                        try plan.observe(node: node, time: t, value: axis.observe(grid, at: t, noise: variable.noise, &noise))
                    }
                } else {
                    let times = functionGrid(axis), first = plan.tokens.count
                    try plan.target(node: node, times: times)
                    let positions = calibratedPositions(count: times.count)
                    // short names, unless they would collide (times far from 0)
                    var names = positions.map { "\(variable.name)(t=\(String(format: "%g", times[$0])))" }
                    if Set(names).count < names.count { names = positions.map { "\(variable.name)(t=\(times[$0]))" } }
                    for (k, name) in zip(positions, names) {
                        targets.append(Target(name: name, variable: variable.name, time: times[k], token: first + k,
                                              truth: axis.interpolate(grid, at: times[k])))
                    }
                }
                continue
            }
            for e in 0..<variable.size {
                if variable.kind == .data { try plan.observe(node: node + e, value: row[offsets[v] + e]); continue }
                try plan.target(node: node + e)
                let name = variable.size == 1 ? variable.name : "\(variable.name)[\(e)]"
                let token = plan.tokens.firstIndex { $0.node == node + e && $0.time == nil }!
                targets.append(Target(name: name, variable: variable.name, time: nil, token: token, truth: row[offsets[v] + e]))
            }
        }
        return (plan, targets)
    }
}

