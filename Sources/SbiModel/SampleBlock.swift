// One block of joint samples integrated from t = 1 down to tMin in normalised units: the reverse
// SDE by Euler-Maruyama (with RePaint resampling under guidance) or the probability-flow ODE by
// Heun's method on a uniform t grid, or over noise levels (NoiseLevelSteps.swift). Sample j of
// the whole run draws from its own stream key.split(j).
import SbiCore

struct SampleBlock {
    let scoreFunction: ScoreFunction
    let conditioning: Conditioning
    let sde: SDE
    let norm: Normalization
    let settings: SamplerSettings
    /// (d): 1 for tokens held at their observed value
    let observedMask: [Float]
    let n: Int, d: Int
    let guided: Bool
    /// x (n, d) in normalised units; observed tokens fixed
    var x: [Double]
    /// score (n, d) of the last evaluation
    var score: [Double]
    var rngs: [RandomStream]
    /// Index of the block's first sample in the whole run.
    let first: Int

    init(_ scoreFunction: ScoreFunction, _ conditioning: Conditioning, norm: Normalization, settings: SamplerSettings,
         n: Int, key: RandomKey, first: Int) {
        self.scoreFunction = scoreFunction; self.conditioning = conditioning; self.norm = norm; self.settings = settings
        self.first = first
        sde = scoreFunction.sde
        d = scoreFunction.tokenCount; self.n = n
        var mask = [Float](repeating: 0, count: d), value = [Float](repeating: 0, count: d)
        for (node, v) in conditioning.observed { mask[node] = 1; value[node] = Float(norm.normalize(v, node: node)) }
        for node in conditioning.perSample.keys { mask[node] = 1 }
        observedMask = mask
        guided = !conditioning.constraints.isEmpty
        rngs = (0..<n).map { RandomStream(key: key.split(UInt64(first + $0))) }
        x = [Double](repeating: 0, count: n * d)
        let s0 = sde.initialStd(dataVariance: 1)
        for e in 0..<n { for i in 0..<d {
            x[e * d + i] = mask[i] != 0 ? Double(value[i]) : s0 * rngs[e].normal()
        } }
        // per-sample observed values, rounded through Float as shared ones are
        for (node, values) in conditioning.perSample { for e in 0..<n {
            x[e * d + node] = Double(Float(norm.normalize(values[first + e], node: node)))
        } }
        score = [Double](repeating: 0, count: n * d)
    }

    /// Runs the whole integration of this block; `progress(done, of)` after each step.
    mutating func integrate(progress: (Int, Int) -> Void) {
        switch settings.method {
        case .sde, .ode:
            let steps = settings.steps
            let ts = (0..<steps).map { 1 - (1 - SDE.tMin) * Double($0) / Double(steps - 1) }
            for k in 0..<(steps - 1) {
                progress(k + 1, steps - 1)
                if settings.method == .sde { eulerMaruyamaStep(from: ts[k], to: ts[k + 1], last: k == steps - 2) }
                else { heunStep(from: ts[k], to: ts[k + 1]) }
            }
        case .edm, .dpmpp2m, .dpmpp2mSDE:
            let levels = settings.noiseLevels(for: sde), top = levels[0]
            // x holds x_1 ~ N(0, s0^2) for latent tokens; scale it to x~ = x / mu(1)
            for r in 0..<(n * d) where observedMask[r % d] == 0 { x[r] /= sde.mean(1) }
            let gamma = settings.churn > 0 ? min(settings.churn / Double(settings.steps), 2.squareRoot() - 1) : 0
            var history: (denoised: [Double], h: Double)? = nil
            for i in 0..<(levels.count - 1) {
                progress(i + 1, levels.count - 1)
                noiseLevelStep(from: levels[i], to: levels[i + 1], gamma: gamma, ceiling: top, history: &history)
            }
        }
    }

    /// score(xs, t) into `score`, guidance included.
    mutating func evaluate(_ xs: [Double], _ t: Double) {
        scoreFunction.scores(xs, n: n, t: t, observed: observedMask, into: &score)
        if guided { Sampler.addGuidance(sde, norm, d, conditioning, xs, t, n, &score) }
    }

    /// The reverse-time drift of entry r at (xs, t) with the current score; the ODE halves the score term.
    func reverseDrift(_ xs: [Double], _ t: Double, _ r: Int, ode: Bool) -> Double {
        let g = sde.diffusion(t)
        return sde.driftCoefficient(t) * xs[r] - (ode ? 0.5 : 1) * g * g * score[r]
    }

    /// One reverse SDE step t -> tNext (no noise in the last); under guidance, RePaint: go back up
    /// to t with the forward SDE and repeat the step, `resampling` times.
    mutating func eulerMaruyamaStep(from t: Double, to tNext: Double, last: Bool) {
        let dt = t - tNext
        let repeats = guided ? settings.resampling : 0
        for rep in 0...repeats {
            evaluate(x, t)
            let g = sde.diffusion(t)
            for e in 0..<n { for i in 0..<d where observedMask[i] == 0 {
                let r = e * d + i
                let noise = last ? 0 : g * dt.squareRoot() * rngs[e].normal()
                x[r] = x[r] - reverseDrift(x, t, r, ode: false) * dt + noise
            } }
            guard rep < repeats && !last else { continue }
            let gb = sde.diffusion(tNext)
            for e in 0..<n { for i in 0..<d where observedMask[i] == 0 {
                let r = e * d + i
                x[r] = x[r] + sde.driftCoefficient(tNext) * x[r] * dt + gb * dt.squareRoot() * rngs[e].normal()
            } }
        }
    }

    /// One probability-flow ODE step t -> tNext by Heun's method (two score evaluations).
    mutating func heunStep(from t: Double, to tNext: Double) {
        let dt = t - tNext
        evaluate(x, t)
        var predicted = x, v0 = [Double](repeating: 0, count: n * d)
        for r in 0..<(n * d) where observedMask[r % d] == 0 {
            v0[r] = reverseDrift(x, t, r, ode: true)
            predicted[r] = x[r] - v0[r] * dt
        }
        evaluate(predicted, tNext)
        for r in 0..<(n * d) where observedMask[r % d] == 0 {
            x[r] = x[r] - 0.5 * (v0[r] + reverseDrift(predicted, tNext, r, ode: true)) * dt
        }
    }

    /// The block's samples in physical units, observed tokens at their exact values.
    func physicalSamples() -> [[Double]] {
        (0..<n).map { e in
            (0..<d).map { i in
                if let v = conditioning.observed[i] { return v }
                if let values = conditioning.perSample[i] { return values[first + e] }
                return norm.denormalize(x[e * d + i], node: i)
            }
        }
    }
}
