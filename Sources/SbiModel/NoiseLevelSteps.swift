// Integrators over noise levels instead of a uniform grid in t, on the probability-flow ODE in
// scaled coordinates x~ = x / mu(t) with noise level s~ = sigma(t) / mu(t) (VE: x and sigma
// themselves), where dx~/ds~ = (x~ - D(x~; s~)) / s~ and the denoiser is Tweedie's estimate
// D = (x + sigma^2 score) / mu. The levels are Karras et al.'s: s~_i^(1/rho) evenly spaced from the
// model's largest level (or `sigmaHigh`) to `sigmaLow`, then 0. Observed tokens stay at their values throughout.
import Foundation
import SbiCore

extension SDE {
    /// sigma(t) / mu(t), the noise level of x / mu(t).
    public func scaledStd(_ t: Double) -> Double { std(t) / mean(t) }

    /// The t at which scaledStd(t) = level (inverse of scaledStd), not clamped.
    public func time(ofScaledStd level: Double) -> Double {
        switch self {
        case let .ve(s0, s1): return log(level / s0) / log(s1 / s0)
        case let .vp(b0, b1):
            let integral = log1p(level * level)   // B(t) = b0 t + (b1 - b0) t^2 / 2
            guard b1 != b0 else { return integral / b0 }
            return (-b0 + (b0 * b0 + 2 * (b1 - b0) * integral).squareRoot()) / (b1 - b0)
        }
    }
}

extension SamplerSettings {
    /// The noise levels s~_0 > ... > s~_(steps-1) > 0 = s~_steps of the noise-level methods: rho-spaced
    /// from the SDE's largest level down to `sigmaLow`; with `sigmaHigh` below the largest level, one
    /// step from the largest level to `sigmaHigh` and the other steps - 1 rho-spaced from there.
    public func noiseLevels(for sde: SDE) -> [Double] {
        let floor = sde.scaledStd(SDE.tMin), largest = sde.scaledStd(1)
        let high = sigmaHigh.map { min(max($0, floor), largest) } ?? largest
        guard steps > 1 else { return [largest, 0] }
        let leadIn = high < largest
        let top = leadIn ? high : largest, count = leadIn ? steps - 1 : steps
        let bottom = min(max(sigmaLow, floor), top)
        var levels: [Double] = leadIn ? [largest] : []
        if count == 1 { levels.append(top) } else {
            let a = pow(top, 1 / rho), b = pow(bottom, 1 / rho)
            let spacing = (b - a) / Double(count - 1)
            levels += (0..<count).map { (i: Int) -> Double in pow(a + Double(i) * spacing, rho) }
        }
        levels.append(0)
        return levels
    }
}

extension SampleBlock {
    /// One step between noise levels, repeated with RePaint resampling under guidance (back up to
    /// `level` with fresh noise before each repeat). Resampled steps are EDM's Heun steps whatever the
    /// method: DPM-Solver++'s extrapolation from the previous denoised estimate diverges once the
    /// state is re-noised off its trajectory (variances of 10^4 on a unit Gaussian), and its first-order
    /// step, repeated, shrinks the variance (by 30% at 20 steps); Heun's stays exact (tested).
    mutating func noiseLevelStep(from level: Double, to next: Double, gamma: Double, ceiling: Double,
                                 history: inout (denoised: [Double], h: Double)?) {
        let resampled = guided && settings.resampling > 0
        let repeats = resampled && next > 0 ? settings.resampling : 0
        for rep in 0...repeats {
            if settings.method == .edm || resampled { edmHeunStep(from: level, to: next, gamma: gamma, ceiling: ceiling) }
            else { dpmSolverStep(from: level, to: next, history: &history) }
            if rep < repeats { addNoise(variance: level * level - next * next) }
        }
    }

    /// EDM's step: churn the level up to s^ = s (1 + gamma) with fresh noise, an Euler step to
    /// `next`, and Heun's correction unless `next` is 0.
    mutating func edmHeunStep(from level: Double, to next: Double, gamma: Double, ceiling: Double) {
        var hat = level
        if gamma > 0 {
            hat = min(level * (1 + gamma), ceiling)
            addNoise(variance: hat * hat - level * level)
        }
        let d0 = slope(x, hat)
        var moved = x
        for r in 0..<(n * d) where observedMask[r % d] == 0 { moved[r] = x[r] + (next - hat) * d0[r] }
        if next > 0 {
            let d1 = slope(moved, next)
            for r in 0..<(n * d) where observedMask[r % d] == 0 { moved[r] = x[r] + (next - hat) * 0.5 * (d0[r] + d1[r]) }
        }
        x = moved
    }

    /// DPM-Solver++(2M)'s step in data prediction: x~ <- (next / s) x~ + (1 - next / s) D', where D'
    /// extrapolates the last two denoised estimates in log-level (first order at the start and to 0).
    /// The SDE variant keeps e^(-2h) = (next / s)^2 of x~, gives the rest to D' and adds fresh noise
    /// of sd next * sqrt(1 - e^(-2h)), so a sample at level s leaves at level `next` exactly.
    mutating func dpmSolverStep(from level: Double, to next: Double, history: inout (denoised: [Double], h: Double)?) {
        let denoised = denoise(x, level)
        guard next > 0 else {
            for r in 0..<(n * d) where observedMask[r % d] == 0 { x[r] = denoised[r] }
            return
        }
        let stochastic = settings.method == .dpmpp2mSDE
        let h = log(level / next), ratio = stochastic ? (next / level) * (next / level) : next / level
        var target = denoised
        if let previous = history {
            let w = 1 / (2 * previous.h / h)   // 1 / (2 r), r = h_previous / h
            for r in 0..<(n * d) where observedMask[r % d] == 0 { target[r] = (1 + w) * denoised[r] - w * previous.denoised[r] }
        }
        for r in 0..<(n * d) where observedMask[r % d] == 0 { x[r] = ratio * x[r] + (1 - ratio) * target[r] }
        if stochastic { addNoise(variance: next * next * (1 - ratio)) }
        history = (denoised, h)
    }

    /// (x~ - D(x~; level)) / level (n, d): the ODE's slope dx~/ds~; 0 for observed tokens.
    mutating func slope(_ xs: [Double], _ level: Double) -> [Double] {
        let denoised = denoise(xs, level)
        var out = [Double](repeating: 0, count: n * d)
        for r in 0..<(n * d) where observedMask[r % d] == 0 { out[r] = (xs[r] - denoised[r]) / level }
        return out
    }

    /// D(x~; level) (n, d): the network's score at the level's t, as Tweedie's estimate of the
    /// clean values (guidance included); observed tokens keep their values.
    mutating func denoise(_ xs: [Double], _ level: Double) -> [Double] {
        let t = min(max(sde.time(ofScaledStd: level), SDE.tMin), 1)
        let mu = sde.mean(t), sigma = sde.std(t)
        var input = xs
        for r in 0..<(n * d) where observedMask[r % d] == 0 { input[r] = mu * xs[r] }
        evaluate(input, t)
        var out = xs
        for r in 0..<(n * d) where observedMask[r % d] == 0 { out[r] = (input[r] + sigma * sigma * score[r]) / mu }
        return out
    }

    /// Fresh N(0, variance) noise on every latent entry, from each sample's own stream.
    mutating func addNoise(variance: Double) {
        let sd = max(variance, 0).squareRoot()
        guard sd > 0 else { return }
        for e in 0..<n { for i in 0..<d where observedMask[i] == 0 { x[e * d + i] += sd * rngs[e].normal() } }
    }
}
