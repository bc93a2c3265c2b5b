// STEM.samples.nc: CF-style posterior samples. Dimension `sample`; a scalar parameter is NAME(sample);
// the sampled elements of a vector are NAME(sample, NAME_index) with NAME_index naming the elements;
// a function or prediction is NAME(sample, NAME_time) with the query times, as the file gave them,
// in NAME_time. Written in the 64-bit-offset format, whose bytes depend only on the content, so the
// same input, model and seed give the same file (the creation time is one global attribute).
import Foundation
import SbiCore
import SbiArchive
import SbiModel
import SbiNetCDF

struct SampledColumns {
    struct Scalar { var variable: String; var elements: [Int]; var tokens: [Int]; var units: String? }
    struct Function { var variable: String; var query: Observation.Query; var tokens: [Int]; var units: String?; var kind: VariableKind }
    var scalars: [Scalar] = []
    var functions: [Function] = []

    /// Groups the plan's targets by variable.
    /// Parameter label -> its token, for the report page's histograms and pair plot.
    func parameterTokens(spec: ModelSpec) -> [String: [Int]] {
        var tokens: [String: [Int]] = [:]
        for s in scalars {
            let v = spec.variables[spec.variableIndex(named: s.variable)!]
            guard v.kind == .parameter else { continue }
            for (e, t) in zip(s.elements, s.tokens) { tokens[v.size == 1 ? v.name : "\(v.name)[\(e)]"] = [t] }
        }
        return tokens
    }

    init(observation obs: Observation) {
        let plan = obs.plan, spec = plan.spec
        var byVariable: [Int: [(Int, Int)]] = [:]   // variable -> (element, token)
        var order: [Int] = []
        for tokenIndex in plan.targets {
            let tok = plan.token(tokenIndex)
            let k = spec.variableOfNode[tok.node]
            if byVariable[k] == nil { order.append(k) }
            byVariable[k, default: []].append((tok.node - spec.nodes(of: k).lowerBound, tokenIndex))
        }
        for k in order {
            let v = spec.variables[k], items = byVariable[k]!
            if v.time != nil {
                let q = obs.queries.first { $0.name == v.name }!
                functions.append(.init(variable: v.name, query: q, tokens: items.map(\.1), units: v.units, kind: v.kind))
            } else {
                scalars.append(.init(variable: v.name, elements: items.map(\.0), tokens: items.map(\.1), units: v.units))
            }
        }
    }
}

enum SamplesWriter {
    /// The samples file's global attributes: what it was made from, and how.
    static func attributes(input: InputFile, read: ReadObservation, request: SamplingRequest, created: String) -> [(String, String)] {
        [
            ("sbiwatch_input_file", input.fileName),
            ("sbiwatch_input_sha256", input.sha256),
            ("sbiwatch_model", read.modelName),
            ("sbiwatch_model_sha256", read.model.sha256),
            ("sbiwatch_seed", String(request.seed)),
            ("sbiwatch_samples", String(request.samples)),
            ("sbiwatch_sampler", request.settings.method.rawValue),
            ("sbiwatch_steps", String(request.settings.steps)),
            ("sbiwatch_resampling", String(request.settings.resampling)),
            ("sbiwatch_version", sbiwatchVersion),
            ("date_created", created),
        ]
    }

    /// Writes the samples file at `path` (the caller renames it into place).
    static func write(_ draws: [[Double]], columns: SampledColumns, spec: ModelSpec, attributes: [(String, String)],
                      to path: String) throws {
        let w = try NetCDFWriter(path: path, format: .offset64)
        let sample = try w.defineDimension("sample", length: draws.count)
        var ids: [(Int32, [Int])] = []   // variable id, token indices (row-major per sample)
        var coordinates: [(Int32, [Double])] = []
        for s in columns.scalars {
            let v = spec.variables[spec.variableIndex(named: s.variable)!]
            if v.size == 1 {
                let id = try w.defineVariable(s.variable, dimensions: [sample])
                try describe(w, id, s.variable, s.units)
                ids.append((id, s.tokens))
            } else {
                let dim = try w.defineDimension("\(s.variable)_index", length: s.elements.count)
                let idx = try w.defineVariable("\(s.variable)_index", dimensions: [dim], type: .int)
                try w.setAttribute("long_name", "element of \(s.variable)", variable: idx)
                coordinates.append((idx, s.elements.map(Double.init)))
                let id = try w.defineVariable(s.variable, dimensions: [sample, dim])
                try describe(w, id, s.variable, s.units)
                ids.append((id, s.tokens))
            }
        }
        for f in columns.functions {
            let dim = try w.defineDimension("\(f.variable)_time", length: f.tokens.count)
            let t = try w.defineVariable("\(f.variable)_time", dimensions: [dim])
            try w.setAttribute("standard_name", "time", variable: t)
            if let u = f.query.units { try w.setAttribute("units", u, variable: t) }
            coordinates.append((t, f.query.fileTimes))
            let id = try w.defineVariable(f.variable, dimensions: [sample, dim])
            try describe(w, id, f.variable, f.units, what: f.kind == .parameter ? "posterior samples of the function" : "posterior predictive samples of")
            ids.append((id, f.tokens))
        }
        try w.setAttribute("Conventions", "CF-1.8")
        try w.setAttribute("title", "sbiwatch posterior samples")
        for (k, v) in attributes { try w.setAttribute(k, v) }
        try w.endDefinitions()
        for (id, values) in coordinates { try w.write(values, variable: id) }
        for (id, tokens) in ids {
            var values: [Double] = []
            values.reserveCapacity(draws.count * tokens.count)
            for d in draws { for t in tokens { values.append(d[t]) } }
            try w.write(values, variable: id)
        }
        try w.close()
    }

    static func describe(_ w: NetCDFWriter, _ id: Int32, _ name: String, _ units: String?, what: String = "posterior samples of") throws {
        try w.setAttribute("long_name", "\(what) \(name)", variable: id)
        if let units { try w.setAttribute("units", units, variable: id) }
    }
}
