// Stage 2 of the pipeline: the draws of one file's query, completed with its observed and
// interpolated tokens.
import SbiCore
import SbiModel

/// The posterior (and predictive) draws of one file.
public struct Draws {
    /// (samples, completed tokens) in physical units: see `QueryPlan.complete`.
    public var rows: [[Double]]
    public var request: SamplingRequest
}

extension Draws {
    /// Samples the query of `read`. What the sampler refuses (sizes, values) comes from the file;
    /// a non-finite draw is an internal error.
    public static func sample(_ read: ReadObservation, input: InputFile, threads: Int?,
                              progress: ((Int, Int) -> Void)? = nil) throws -> Draws {
        let plan = read.observation.plan, request = read.request
        let raw: [[Double]]
        do {
            raw = try Sampler.sample(read.model.model, tokens: plan.tokens, plan.conditioning, count: request.samples,
                                     settings: request.settings, key: RandomKey(seed: request.seed), threads: threads, progress: progress)
        } catch let e as SbiError {
            throw SbiError(e.code == .usage ? .badInput : e.code, e.message, hint: e.hint, subject: input.displayName)
        }
        let rows = plan.complete(raw)
        let targets = plan.targets
        for d in rows { for t in targets where !d[t].isFinite {
            throw SbiError(.internalError, "the sampler produced a non-finite value for \(plan.label(ofToken: t))",
                           hint: "report this with the file and model; try --seed with another value meanwhile", subject: input.displayName)
        } }
        return Draws(rows: rows, request: request)
    }
}
