// Stage 2 of the pipeline: the draws of one file's query, completed with its observed and
// interpolated tokens.
import SbiCore
import SbiModel

/// The posterior (and predictive) draws of one file.
public struct Draws {
    /// (samples, completed tokens) in physical units: see `QueryPlan.complete`.
    public var rows: [[Double]]
    public var request: SamplingRequest
    /// Where the file has constraints (sbiwatch_constraints): draws of the same query without them,
    /// completed likewise, so the report can show what the constraints changed. Nil otherwise.
    public var unconstrained: [[Double]]? = nil
}

extension Draws {
    /// Samples the query of `read`. What the sampler refuses (sizes, values) comes from the file;
    /// a non-finite draw is an internal error.
    public static func sample(_ read: ReadObservation, input: InputFile, threads: Int?,
                              progress: ((Int, Int) -> Void)? = nil) throws -> Draws {
        let plan = read.observation.plan, request = read.request
        let twice = !plan.plannedConstraints.isEmpty, n = request.samples
        // with constraints the free run follows: progress counts both runs' samples
        let first = progress.map { p in { (k: Int, _: Int) in p(k, twice ? 2 * n : n) } }
        let rows = try run(read, plan.conditioning, settings: request.settings, key: RandomKey(seed: request.seed),
                           input: input, threads: threads, progress: first)
        var draws = Draws(rows: rows, request: request)
        if twice {
            let second = progress.map { p in { (k: Int, _: Int) in p(n + k, 2 * n) } }
            // resampling steps apply only under guidance, so the free run may keep the request's settings
            draws.unconstrained = try run(read, plan.unconstrainedConditioning, settings: request.settings,
                                          key: RandomKey(seed: request.seed).split(0xF4EE), input: input, threads: threads,
                                          progress: second)
        }
        return draws
    }

    /// One sampling run of the file's tokens under `conditioning`, completed (interpolated values
    /// appended) and checked finite.
    static func run(_ read: ReadObservation, _ conditioning: Conditioning, settings: SamplerSettings, key: RandomKey,
                    input: InputFile, threads: Int?, progress: ((Int, Int) -> Void)?) throws -> [[Double]] {
        let plan = read.observation.plan
        let raw: [[Double]]
        do {
            raw = try Sampler.sample(read.model.model, tokens: plan.tokens, conditioning, count: read.request.samples,
                                     settings: settings, key: key, threads: threads, progress: progress)
        } catch let e as SbiError {
            throw SbiError(e.code == .usage ? .badInput : e.code, e.message, hint: e.hint, subject: input.displayName)
        }
        let rows = plan.complete(raw, noiseKey: key.split(QueryPlan.interpolationNoiseStream))
        for d in rows { for t in plan.targets where !d[t].isFinite {
            throw SbiError(.internalError, "the sampler produced a non-finite value for \(plan.label(ofToken: t))",
                           hint: "report this with the file and model; try --seed with another value meanwhile", subject: input.displayName)
        } }
        return rows
    }
}
