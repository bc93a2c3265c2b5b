// Which tokens are observed in a training example (METHOD.md, "Training").
import SbiCore

/// The structured mixture of the reference: 20% each of joint (all latent), posterior
/// (data observed), likelihood (parameters observed), Bernoulli(0.3) and Bernoulli(0.7).
/// An all-observed draw becomes all-latent. Bernoulli masks are drawn per example.
public struct ConditionMaskSampler: Sendable {
    public init() {}

    /// Writes 1 (observed) or 0 (latent) for each token into `mask`; `isData[i]` tells whether
    /// token i belongs to a data variable (else a parameter).
    public func sample(isData: [Bool], into mask: UnsafeMutablePointer<Float>, _ rng: inout RandomStream) {
        let n = isData.count
        let u = rng.uniform()
        mask.update(repeating: 0, count: n)
        switch u {
        case ..<0.2: break  // joint
        case ..<0.4: for i in 0..<n where isData[i] { mask[i] = 1 }  // posterior
        case ..<0.6: for i in 0..<n where !isData[i] { mask[i] = 1 }  // likelihood
        default:
            let p = u < 0.8 ? 0.3 : 0.7
            for i in 0..<n { mask[i] = rng.uniform() < p ? 1 : 0 }
        }
        var all = true
        for i in 0..<n where mask[i] == 0 { all = false; break }
        if all { mask.update(repeating: 0, count: n) }
    }
}

/// A forecast's condition mask: every data token up to a cut observed, everything else latent
/// (parameters, functions of time, data after the cut). The cut is the same fraction of every time
/// axis, uniform on [0.2, 1): a file observed up to "today" that asks for forecasts and for a
/// function-valued parameter over the whole domain. The reference's random masks almost never make
/// this conditional when series are dense (every one of 60 data tokens on the early side of a cut).
public struct ForecastMaskSampler: Sendable {
    public init() {}

    /// Writes 1 (observed) or 0 (latent) per token; `isData[i]` as in `ConditionMaskSampler`,
    /// `position[i]` the token's time as a fraction of its axis (nil: a token without time, observed
    /// when it is data). An all-observed draw becomes all-latent, as in the mixture. Consumes one
    /// uniform draw.
    public func sample(isData: [Bool], position: [Double?], into mask: UnsafeMutablePointer<Float>,
                       _ rng: inout RandomStream) {
        let cut = 0.2 + 0.8 * rng.uniform()
        var all = true
        for i in 0..<isData.count {
            let early = position[i].map { $0 <= cut } ?? true
            mask[i] = isData[i] && early ? 1 : 0
            if mask[i] == 0 { all = false }
        }
        if all { mask.update(repeating: 0, count: isData.count) }  // nothing latent: as the mixture, all latent
    }
}
