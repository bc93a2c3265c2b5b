// Observation files (convention "sbiwatch-1", see man sbiwatch, OBSERVATION FILES): NetCDF variables
// named like model variables, each 1-D along its own time dimension with a time coordinate, or a
// scalar; missing values as _FillValue / missing_value / NaN; interval observations in
// NAME_bounds; query grids in NAME_query_time. Reading maps all of it onto one QueryPlan.
import Foundation
import SbiCore
import SbiModel
import SbiNetCDF

/// What one file asks: exact and interval observations, query grids, and how to sample.
public struct Observation: Sendable {
    /// A time-indexed variable's observed points (model time units), for reports.
    public struct Series: Sendable, Equatable {
        public var name: String
        public var times: [Double]
        public var values: [Double]
    }
    /// A query grid: the times as written in the file (with their units) and in model units.
    public struct Query: Sendable {
        public var name: String
        public var fileTimes: [Double]
        public var modelTimes: [Double]
        public var units: String?
    }
    public var plan: QueryPlan
    public var series: [Series] = []
    /// Exactly observed scalars (label, value).
    public var scalars: [(String, Double)] = []
    /// Interval observations (label, lower, upper).
    public var intervals: [(String, Double, Double)] = []
    public var queries: [Query] = []
    /// The calendar date of model time 0, when the file's times are "UNIT since DATE".
    public var calendar: CalendarOrigin?
    /// Plain-language warnings for the report.
    public var warnings: [String] = []
    /// Things the reader ignored or changed.
    public var notes: [String] = []
}

/// An observation file opened for reading. Global attributes are read at once, so the model it
/// asks for can be chosen before its variables are mapped.
public final class ObservationFile {
    /// Most values sbiwatch reads from one variable of an observation file (refused before allocating).
    public static let maxValuesPerVariable = 100_000
    /// Most query times per variable.
    public static let maxQueryTimes = 1000
    /// Observed values further than this from the training mean (in training standard deviations) are refused.
    public static let maxStandardDeviations = 1e6
    /// Most tokens (observations plus queried times plus parameters) in one file's query.
    public static let maxTokens = 4096

    public let path: String
    let file: NetCDFReader
    public let modelName: String?
    public let samples: Int?
    public let seed: UInt64?
    /// The global attribute sbiwatch_resampling: RePaint steps per step under guidance (default 5).
    public let resampling: Int?
    /// The global attribute sbiwatch_constraints: constraint-language expressions separated by ';'.
    public let constraintText: String?

    public init(path: String) throws {
        self.path = path
        file = try NetCDFReader(path: path)
        do {
            modelName = try file.textAttribute("sbiwatch_model")?.trimmingCharacters(in: .whitespaces)
            samples = try Self.integerAttribute(file, "sbiwatch_samples", range: 1...100_000)
            seed = try Self.integerAttribute(file, "sbiwatch_seed", range: 0...Int(Int32.max)).map(UInt64.init)
            resampling = try Self.integerAttribute(file, "sbiwatch_resampling", range: 0...100)
            constraintText = try file.textAttribute("sbiwatch_constraints")
        } catch { file.close(); throw error }
    }

    public func close() { file.close() }

    /// Reads `path` the way `observation(for:)` would, without a model: the header, every
    /// attribute and every numeric variable within the limits; throws what reading it would.
    public static func probe(_ path: String) throws {
        let r = try NetCDFReader(path: path)
        defer { r.close() }
        for name in r.globalAttributeNames { _ = try r.textAttribute(name); _ = try r.numericAttribute(name) }
        for v in r.variables {
            for name in v.attributeNames { _ = try r.textAttribute(name, of: v); _ = try r.numericAttribute(name, of: v) }
            if v.type.isNumeric && v.count <= maxValuesPerVariable { _ = try r.doubles(v) }
        }
    }

    /// Whether `path` opens as NetCDF (the daemon's readiness check).
    public static func opens(_ path: String) -> Bool { (try? probe(path)) != nil }

    static func integerAttribute(_ f: NetCDFReader, _ name: String, range: ClosedRange<Int>) throws -> Int? {
        let text = try f.textAttribute(name)
        let numbers = try f.numericAttribute(name)
        if text == nil && numbers == nil {
            if f.globalAttributeNames.contains(name) {
                throw SbiError(.badInput, "the global attribute \(name) is neither a number nor text", hint: "write it as an integer, e.g. \(name) = \(range.lowerBound)")
            }
            return nil
        }
        let value = numbers?.first ?? text.flatMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard let value, value.isFinite, value == value.rounded(), value >= Double(range.lowerBound), value <= Double(range.upperBound) else {
            throw SbiError(.badInput, "the global attribute \(name) must be an integer in \(range.lowerBound)...\(range.upperBound)",
                           hint: "fix or remove the attribute")
        }
        return Int(value)
    }

    func bad(_ what: String, _ hint: String) -> SbiError { SbiError(.badInput, what, hint: hint) }

    /// Maps the file onto the model's variables.
    public func observation(for spec: ModelSpec, normalization: Normalization? = nil) throws -> Observation {
        var obs = Observation(plan: QueryPlan(spec: spec))
        let (used, everyValueMissing) = try mapVariables(spec: spec, normalization: normalization, into: &obs)
        guard used else {
            let known = spec.variables.map(\.name).joined(separator: ", ")
            let have = file.variables.map(\.name).joined(separator: ", ")
            throw bad("no variable the model knows (the model has \(known); the file has \(have.isEmpty ? "no variables" : have))",
                      "name the observed variables like the model's, or map one with the attribute sbiwatch_variable = \"NAME\"")
        }
        guard !everyValueMissing else {
            throw bad("every observed value is missing (_FillValue, missing_value or NaN)", "send a file with at least one observed value")
        }
        try targetParameters(spec: spec, into: &obs)
        for q in obs.queries {
            let k = spec.variableIndex(named: q.name)!
            guard let answer = obs.plan.answers[spec.nodes(of: k).lowerBound], let axis = spec.variables[k].time else { continue }
            if answer.method == .interpolated {
                obs.notes.append("\(q.name) on \(q.modelTimes.count) times: \(answer.sentence) (the model answers up to \(axis.maxPoints) times per variable directly)")
            }
        }
        guard !obs.plan.targets.isEmpty else {
            throw bad("every parameter is observed and nothing is queried", "leave a parameter out, or add a NAME_query_time grid")
        }
        try addConstraints(to: &obs)
        return obs
    }

    /// The constraints of sbiwatch_constraints, resolved after the observations and query grids
    /// (times are in the model's time units).
    func addConstraints(to obs: inout Observation) throws {
        guard let constraintText else { return }
        do {
            for e in try ConstraintExpression.parseList(constraintText) { try obs.plan.constrain(e) }
        } catch let e as SbiError {
            throw SbiError(e.code, "the global attribute sbiwatch_constraints: \(e.message)", hint: e.hint)
        }
        guard obs.plan.tokens.count <= Self.maxTokens else {
            throw bad("the observations, queries and constraints need \(obs.plan.tokens.count) tokens; one query takes at most \(Self.maxTokens)",
                      "constrain shorter time ranges")
        }
    }

    /// Names of variables that serve others (coordinates, bounds, queries) and are not data themselves.
    func auxiliaryNames() throws -> Set<String> {
        var auxiliary = Set<String>()
        for v in file.variables {
            if v.dimensions.count == 1, v.dimensions[0].name == v.name { auxiliary.insert(v.name) }
            if let coords = try file.textAttribute("coordinates", of: v) {
                for c in coords.split(separator: " ") { auxiliary.insert(String(c)) }
            }
            if let b = try file.textAttribute("bounds", of: v) { auxiliary.insert(b) }
        }
        return auxiliary
    }

    /// Reads every variable of the file into `obs`: queries, values, bounds standing alone.
    /// Returns whether any model variable was found and whether all of their values were missing.
    func mapVariables(spec: ModelSpec, normalization: Normalization?, into obs: inout Observation) throws -> (used: Bool, everyValueMissing: Bool) {
        let modelNames = Set(spec.variables.map(\.name))
        let auxiliary = try auxiliaryNames()
        var used = false, everyValueMissing = true
        var observedVariables = Set<String>()
        for v in file.variables {
            let target = try file.textAttribute("sbiwatch_variable", of: v) ?? v.name
            if let base = Self.base(of: target, suffix: "_query_time", in: modelNames) {
                try readQuery(v, name: base, spec: spec, into: &obs)
                continue
            }
            if let base = Self.base(of: target, suffix: "_bounds", in: modelNames) {
                // bounds of a variable the file does not hold as values: interval observations only
                let hasValues = try file.variables.contains { try (file.textAttribute("sbiwatch_variable", of: $0) ?? $0.name) == base }
                if !hasValues, observedVariables.insert(base).inserted {
                    used = true
                    if !(try readVariable(v, model: spec.variableIndex(named: base)!, spec: spec, normalization: normalization,
                                          into: &obs, boundsOnly: true)) { everyValueMissing = false }
                }
                continue
            }
            guard let k = spec.variableIndex(named: target) else {
                if !auxiliary.contains(v.name) { obs.notes.append("variable \(v.name) is not a variable of the model; ignored") }
                continue
            }
            guard observedVariables.insert(target).inserted else {
                throw bad("two variables map to the model variable \(target)", "keep one, or remove sbiwatch_variable from the other")
            }
            used = true
            if !(try readVariable(v, model: k, spec: spec, normalization: normalization, into: &obs)) { everyValueMissing = false }
        }
        return (used, everyValueMissing)
    }

    /// "beta" for "beta_query_time" when beta is a model variable; nil otherwise.
    static func base(of name: String, suffix: String, in modelNames: Set<String>) -> String? {
        guard name.hasSuffix(suffix) else { return nil }
        let base = String(name.dropLast(suffix.count))
        return modelNames.contains(base) ? base : nil
    }

    /// Parameters are always returned; a function-valued parameter without a query grid gets a default one.
    func targetParameters(spec: ModelSpec, into obs: inout Observation) throws {
        for (k, v) in spec.variables.enumerated() where v.kind == .parameter {
            guard let axis = v.time else {
                for node in spec.nodes(of: k) where !obs.plan.isObserved(node: node) { try obs.plan.target(node: node) }
                continue
            }
            guard !obs.queries.contains(where: { $0.name == v.name }) else { continue }
            let n = min(axis.grid, 100)
            let times = (0..<n).map { axis.lower + (axis.upper - axis.lower) * Double($0) / Double(n - 1) }
            try obs.plan.target(node: spec.nodes(of: k).lowerBound, times: times)
            obs.queries.append(.init(name: v.name, fileTimes: times, modelTimes: times, units: axis.units))
            obs.notes.append("no \(v.name)_query_time in the file; \(v.name) is reported on \(n) evenly spaced times over [\(num(axis.lower)), \(num(axis.upper))]")
        }
    }

    /// The time coordinate of a 1-D variable: named in `coordinates`, or the dimension's coordinate variable.
    func timeCoordinate(of v: NCVariable) throws -> NCVariable {
        let dim = v.dimensions[0]
        var candidates: [String] = []
        if let coords = try file.textAttribute("coordinates", of: v) { candidates += coords.split(separator: " ").map(String.init) }
        candidates.append(dim.name)
        for c in candidates {
            if let t = file.variable(named: c), t.dimensions.count == 1, t.dimensions[0].name == dim.name { return t }
        }
        throw bad("variable \(v.name) has no time coordinate (its dimension is \(dim.name))",
                  "add a coordinate variable \(dim.name)(\(dim.name)) with units, e.g. \"days since 2026-01-01\", or name one in the attribute coordinates")
    }

    /// Reads numeric values with missing ones (fill, missing_value, NaN, infinities) as nil.
    func values(_ v: NCVariable) throws -> [Double?] {
        guard v.type.isNumeric else {
            throw bad("variable \(v.name) holds \(v.type) values, not numbers", "store observations as float or double")
        }
        guard v.count <= Self.maxValuesPerVariable, v.dimensions.allSatisfy({ $0.length <= Self.maxValuesPerVariable }) else {
            throw bad("variable \(v.name) has \(v.dimensions.map { "\($0.name) = \($0.length)" }.joined(separator: ", ")) values; the limit is \(Self.maxValuesPerVariable) per variable",
                      "observation files hold observations, not simulations; split the file")
        }
        let raw = try file.doubles(v)
        // without a _FillValue attribute, netCDF's default fill of the type marks unwritten values
        let fill = try file.numericAttribute("_FillValue", of: v) ?? v.type.defaultFill.map { [$0] } ?? []
        let fills = fill + (try file.numericAttribute("missing_value", of: v) ?? [])
        return raw.map { x in (!x.isFinite || fills.contains(where: { $0 == x || abs($0 - x) <= 1e-6 * abs($0) })) ? nil : x }
    }

    /// Times of a coordinate in model units: numeric, finite, strictly increasing.
    func times(_ t: NCVariable, of v: NCVariable, axis: TimeAxis) throws -> (file: [Double], model: [Double], units: String?) {
        guard t.type.isNumeric else {
            throw bad("the time coordinate \(t.name) of \(v.name) holds \(t.type) values, not numbers", "store times as numbers with a units attribute, e.g. \"days since 2026-01-01\"")
        }
        let vals = try values(t)
        if let i = vals.firstIndex(where: { $0 == nil }) {
            throw bad("the time coordinate \(t.name) of \(v.name) has a missing or NaN time at index \(i)", "every time must be a number; leave the value out instead, with its time")
        }
        let file = vals.map { $0! }
        for i in file.indices.dropFirst() {
            if file[i] == file[i - 1] {
                throw bad("the time coordinate \(t.name) of \(v.name) repeats the time \(num(file[i])) (indices \(i - 1) and \(i))", "give each time once")
            }
            if file[i] < file[i - 1] {
                throw bad("the time coordinate \(t.name) of \(v.name) is not sorted (\(num(file[i - 1])) before \(num(file[i])) at index \(i))", "sort the observations by time")
            }
        }
        let units = try self.file.textAttribute("units", of: t)
        let factor = try TimeUnits.factor(fileUnits: units, modelUnits: axis.units, context: "time coordinate \(t.name)")
        return (file, file.map { $0 * factor }, units)
    }

    /// Returns true when every value of the variable is missing.
    /// With `boundsOnly`, `v` is a NAME_bounds variable standing alone: every point is an interval.
    func readVariable(_ v: NCVariable, model k: Int, spec: ModelSpec, normalization: Normalization?, into obs: inout Observation,
                      boundsOnly: Bool = false) throws -> Bool {
        let source = VariableSource(v, boundsOnly: boundsOnly, file: file)
        if let axis = spec.variables[k].time {
            return try readSeries(source, axis: axis, model: k, spec: spec, normalization: normalization, into: &obs)
        }
        return try readFixed(source, model: k, spec: spec, normalization: normalization, into: &obs)
    }

    /// A series' observed points (time, value, lower, upper) inside the model's domain; thinned to
    /// the trained maximum with a warning.
    func seriesPoints(_ src: VariableSource, axis: TimeAxis, into obs: inout Observation) throws -> [(Double, Double?, Double?, Double?)] {
        let v = src.variable, boundsOnly = src.boundsOnly, bounds = src.bounds, boundsName = src.boundsName, valueCount = src.valueCount
        guard v.dimensions.count == (boundsOnly ? 2 : 1) else {
            throw bad("variable \(v.name) has \(v.dimensions.count) dimensions; a time series is 1-D along its time dimension", "write \(v.name)(time) with a time coordinate")
        }
        let t = try timeCoordinate(of: v)
        let (_, modelTimes, units) = try times(t, of: v, axis: axis)
        if obs.calendar == nil { obs.calendar = CalendarOrigin(units: units, modelUnits: axis.units) }
        let vals = boundsOnly ? [Double?](repeating: nil, count: valueCount) : try values(v)
        var lower: [Double?] = [], upper: [Double?] = []
        if let b = bounds {
            guard b.dimensions.count == 2, b.dimensions[0].name == v.dimensions[0].name, b.dimensions[1].length == 2 else {
                throw bad("\(boundsName) must have the shape (\(v.dimensions[0].name), 2)", "write lower and upper bounds per time")
            }
            let bv = try values(b)
            lower = stride(from: 0, to: bv.count, by: 2).map { bv[$0] }
            upper = stride(from: 1, to: bv.count, by: 2).map { bv[$0] }
        }
        var points: [(Double, Double?, Double?, Double?)] = []   // time, value, lower, upper
        for i in vals.indices {
            let lo = lower.isEmpty ? nil : lower[i], hi = upper.isEmpty ? nil : upper[i]
            guard vals[i] != nil || lo != nil || hi != nil else { continue }
            guard axis.contains(modelTimes[i]) else {
                throw bad("\(v.name) is observed at time \(num(modelTimes[i]))\(axis.units.map { " " + $0 } ?? ""), outside the model's time domain [\(num(axis.lower)), \(num(axis.upper))]",
                          "the model was trained on that domain only; drop the observations outside it, or check the time units")
            }
            points.append((modelTimes[i], vals[i], lo, hi))
        }
        if points.count > axis.maxPoints {
            let m = max(axis.maxPoints, 1)
            let keep = m == 1 ? [0] : (0..<m).map { Int((Double($0) * Double(points.count - 1) / Double(m - 1)).rounded()) }
            obs.warnings.append("\(v.name) has \(points.count) observed times but the model was trained with at most \(axis.maxPoints); \(axis.maxPoints) evenly spread ones are used")
            points = keep.map { points[$0] }
        }
        return points
    }

    /// A time series or function-valued variable: exact points observed, bounded ones constrained.
    /// Returns true when every value is missing.
    func readSeries(_ src: VariableSource, axis: TimeAxis, model k: Int, spec: ModelSpec, normalization: Normalization?,
                    into obs: inout Observation) throws -> Bool {
        let v = src.variable, boundsName = src.boundsName, nodes = spec.nodes(of: k)
        let points = try seriesPoints(src, axis: axis, into: &obs)
        if points.isEmpty {
            obs.notes.append("every value of \(v.name) is missing; it is not used")
            return true
        }
        var seriesTimes: [Double] = [], seriesValues: [Double] = []
        for (time, value, lo, hi) in points {
            if let value {
                try obs.plan.observe(node: nodes.lowerBound, time: time, value: value)
                seriesTimes.append(time); seriesValues.append(value)
                try checkRange(value, node: nodes.lowerBound, label: "\(v.name) at time \(num(time))", normalization: normalization, into: &obs)
            } else {
                let a = lo ?? -.infinity, b = hi ?? .infinity
                guard a < b else { throw bad("\(boundsName) at time \(num(time)) has lower \(num(a)) not below upper \(num(b))", "write lower < upper") }
                try checkBounds(a, b, node: nodes.lowerBound, label: "\(boundsName) at time \(num(time))", normalization: normalization)
                try obs.plan.constrain(node: nodes.lowerBound, time: time, lower: a, upper: b)
                obs.intervals.append(("\(v.name)@\(num(time))", a, b))
            }
        }
        obs.series.append(.init(name: spec.variables[k].name, times: seriesTimes, values: seriesValues))
        return false
    }

    /// A scalar or a vector parameter/data variable. Returns true when every value is missing.
    func readFixed(_ src: VariableSource, model k: Int, spec: ModelSpec, normalization: Normalization?,
                   into obs: inout Observation) throws -> Bool {
        let v = src.variable, boundsOnly = src.boundsOnly, bounds = src.bounds, boundsName = src.boundsName, valueCount = src.valueCount
        let mv = spec.variables[k], nodes = spec.nodes(of: k)
        guard valueCount == mv.size, v.dimensions.count <= (boundsOnly ? 2 : 1) else {
            throw bad("variable \(v.name) has shape (\(v.dimensions.map { "\($0.name) = \($0.length)" }.joined(separator: ", "))); the model's \(mv.name) has \(mv.size) value\(mv.size == 1 ? "" : "s")",
                      mv.size == 1 ? "write \(v.name) as a scalar (no dimensions)" : "write \(v.name) along one dimension of length \(mv.size)")
        }
        let vals = boundsOnly ? [Double?](repeating: nil, count: valueCount) : try values(v)
        var bv: [Double?] = []
        if let b = bounds {
            guard b.count == 2 * mv.size else { throw bad("\(boundsName) must hold 2 values (lower, upper) per element of \(v.name)", "write \(boundsName)(\(mv.size == 1 ? "" : "n, ")2)") }
            bv = try values(b)
        }
        var allMissing = true
        for (e, node) in nodes.enumerated() {
            let label = mv.size == 1 ? mv.name : spec.label(ofNode: node)
            if let x = vals[e] {
                try obs.plan.observe(node: node, value: x)
                obs.scalars.append((label, x))
                try checkRange(x, node: node, label: label, normalization: normalization, into: &obs)
                allMissing = false
            } else if !bv.isEmpty, bv[2 * e] != nil || bv[2 * e + 1] != nil {
                let a = bv[2 * e] ?? -.infinity, b = bv[2 * e + 1] ?? .infinity
                guard a < b else { throw bad("\(boundsName) of \(label) has lower \(num(a)) not below upper \(num(b))", "write lower < upper") }
                try checkBounds(a, b, node: node, label: "\(boundsName) of \(label)", normalization: normalization)
                try obs.plan.constrain(node: node, lower: a, upper: b)
                obs.intervals.append((label, a, b))
                allMissing = false
            }
        }
        if allMissing { obs.notes.append("every value of \(v.name) is missing; it is not used") }
        return allMissing
    }

    /// One variable as read: its values (or, standing alone, its bounds) and its bounds variable.
    struct VariableSource {
        let variable: NCVariable
        let boundsOnly: Bool
        let boundsName: String
        let bounds: NCVariable?
        let valueCount: Int

        init(_ v: NCVariable, boundsOnly: Bool, file: NetCDFReader) {
            variable = v; self.boundsOnly = boundsOnly
            boundsName = boundsOnly ? v.name : v.name + "_bounds"
            bounds = boundsOnly ? v : file.variable(named: boundsName)
            valueCount = boundsOnly ? v.count / 2 : v.count
        }
    }

    /// The query variable's sbiwatch_method: "direct" (every time sampled by the model; refused
    /// beyond its trained density), "interpolate", or nil (direct when it fits, else interpolated).
    func queryMethod(_ q: NCVariable) throws -> QueryMethod? {
        guard let text = try file.textAttribute("sbiwatch_method", of: q) else { return nil }
        switch text.trimmingCharacters(in: .whitespaces).lowercased() {
        case "direct": return .direct
        case "interpolate", "interpolated": return .interpolated
        default:
            throw bad("\(q.name) has sbiwatch_method = \"\(text)\"; it must be \"direct\" or \"interpolate\"",
                      "fix the attribute, or remove it to let sbiwatch choose")
        }
    }

    func readQuery(_ q: NCVariable, name: String, spec: ModelSpec, into obs: inout Observation) throws {
        let k = spec.variableIndex(named: name)!
        guard let axis = spec.variables[k].time else {
            throw bad("\(q.name) asks for \(name) on a time grid, but \(name) is not time-indexed in the model", "remove \(q.name); \(name) is returned as a scalar")
        }
        guard q.dimensions.count == 1 else { throw bad("\(q.name) must be 1-D (the query times)", "write \(q.name)(n)") }
        guard q.count <= Self.maxQueryTimes else {
            throw bad("\(q.name) asks for \(q.count) times; the limit is \(Self.maxQueryTimes) per variable", "query a coarser grid")
        }
        guard q.count > 0 else { throw bad("\(q.name) is empty", "give at least one query time, or remove it") }
        let (fileTimes, modelTimes, units) = try times(q, of: q, axis: axis)
        if obs.calendar == nil { obs.calendar = CalendarOrigin(units: units, modelUnits: axis.units) }
        for (ft, mt) in zip(fileTimes, modelTimes) where !axis.contains(mt) {
            throw bad("\(q.name) asks for \(name) at \(num(ft))\(units.map { " (" + $0 + ")" } ?? ""), outside the model's time domain [\(num(axis.lower)), \(num(axis.upper))]\(axis.units.map { " " + $0 } ?? "")",
                      "the model was trained on that domain only; query times within it")
        }
        guard !obs.queries.contains(where: { $0.name == name }) else {
            throw bad("two variables give query times for \(name) (\(q.name) is the second)", "give one \(name)_query_time")
        }
        do {
            try obs.plan.target(node: spec.nodes(of: k).lowerBound, times: modelTimes, method: try queryMethod(q))
        } catch let e as SbiError where e.code == .usage {
            throw bad("\(q.name): \(e.message)", e.hint ?? "fix the query grid")
        }
        obs.queries.append(.init(name: name, fileTimes: fileTimes, modelTimes: modelTimes, units: units))
        guard obs.plan.tokens.count <= Self.maxTokens else {
            throw bad("the observations and queries need \(obs.plan.tokens.count) tokens; one query takes at most \(Self.maxTokens)", "query coarser grids or fewer variables")
        }
    }

    /// Warns when an observation is far from everything the model was trained on.
    /// Finite bounds absurdly far from the training data are refused, as values are.
    func checkBounds(_ a: Double, _ b: Double, node: Int, label: String, normalization: Normalization?) throws {
        guard let n = normalization else { return }
        // a bound beyond a logit-transformed node's support does not bind: nothing to check
        for x in [a, b] where x.isFinite && n.bounds(node) == nil && abs((x - n.mean[node]) / n.std[node]) > Self.maxStandardDeviations {
            throw bad("\(label): the bound \(num(x)) is more than \(num(Self.maxStandardDeviations)) standard deviations from the mean of the training data (\(num(n.mean[node])))",
                      "check the bound and its units, or leave that side open (NaN)")
        }
    }

    /// Values far from the training data get a warning; values absurdly far (beyond a million
    /// standard deviations, where the network's single-precision inputs break down) are refused.
    func checkRange(_ x: Double, node: Int, label: String, normalization: Normalization?, into obs: inout Observation) throws {
        guard let n = normalization else { return }
        if let b = n.bounds(node) {
            guard x >= b.lower && x <= b.upper else {
                throw bad("\(label) = \(num(x)) is outside [\(num(b.lower)), \(num(b.upper))], the range the model was trained on (its prior's support)",
                          "check the value and its units")
            }
            return
        }
        let z = (x - n.mean[node]) / n.std[node]
        guard abs(z) <= Self.maxStandardDeviations else {
            throw bad("\(label) = \(num(x)) is \(num(abs(z))) standard deviations from the mean of the training data (\(num(n.mean[node]))); sbiwatch refuses values this far outside what the model was trained on",
                      "check the value and its units (a count where a fraction is expected, a missing value written as a number without _FillValue)")
        }
        if abs(z) > 5 {
            obs.warnings.append("\(label) = \(num(x)) is \(num(abs(z))) standard deviations from the training data's mean (\(num(n.mean[node]))); the model has not seen values like it, so treat the results with suspicion")
        }
    }
}

/// Short, stable number text for messages: up to 6 significant digits.
func num(_ x: Double) -> String {
    if x.isNaN { return "NaN" }
    if x.isInfinite { return x > 0 ? "inf" : "-inf" }
    return String(format: "%.6g", x)
}
