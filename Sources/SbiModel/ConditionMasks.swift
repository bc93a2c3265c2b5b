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
