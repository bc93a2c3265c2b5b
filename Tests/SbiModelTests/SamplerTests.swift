import XCTest
@testable import SbiCore
@testable import SbiModel

/// A joint Gaussian in normalised units with the exact score of its noised marginals:
/// x ~ N(m, C); x_t = mu x + sigma eps has score -(C_t)^-1 (x_t - mu m) with C_t = mu^2 C + sigma^2 I.
/// Observed nodes are held fixed, so the score of the latent block given them is the conditional one:
/// for the latent block L given observed O: mean m_L + C_LO C_OO^-1 (x_O - m_O), covariance the Schur complement.
final class GaussianScore: ScoreFunction {
    let m: [Double]
    let c: [[Double]]
    let sde: SDE
    var tokenCount: Int { m.count }
    var tokenNormalization: Normalization {
        Normalization(mean: [Double](repeating: 0, count: m.count), std: [Double](repeating: 1, count: m.count))
    }
    let blockCapacity = 512

    init(mean: [Double], covariance: [[Double]], sde: SDE) {
        m = mean; c = covariance; self.sde = sde
    }

    /// Conditional mean and covariance of the latent block given observed values (the same in every row).
    func conditional(latent: [Int], obs: [Int], values: [Double]) -> ([Double], [[Double]]) {
        let cooInv = invert(obs.map { i in obs.map { c[i][$0] } })
        var condMean = latent.map { m[$0] }
        var condCov = latent.map { i in latent.map { c[i][$0] } }
        let diff = obs.map { values[$0] - m[$0] }
        for (a, i) in latent.enumerated() {
            for (p, io) in obs.enumerated() { for q in obs.indices { condMean[a] += c[i][io] * cooInv[p][q] * diff[q] } }
            for (b, j) in latent.enumerated() {
                for (p, io) in obs.enumerated() { for (q, jo) in obs.enumerated() { condCov[a][b] -= c[i][io] * cooInv[p][q] * c[jo][j] } }
            }
        }
        return (condMean, condCov)
    }

    func scores(_ x: [Double], n: Int, t: Double, observed: [Float], into score: inout [Double]) {
        let d = tokenCount
        let latent = (0..<d).filter { observed[$0] == 0 }, obs = (0..<d).filter { observed[$0] != 0 }
        let mu = sde.mean(t), s = sde.std(t)
        // each row's own observed values (rows may be conditioned differently), solved once per distinct values
        var solved: [[Double]: ([Double], [[Double]])] = [:]
        for e in 0..<n {
            let key = obs.map { x[e * d + $0] }
            if solved[key] == nil {
                let (condMean, condCov) = conditional(latent: latent, obs: obs, values: Array(x[(e * d)..<(e * d + d)]))
                // noised: cov_t = mu^2 condCov + s^2 I, mean_t = mu condMean
                var ct = condCov.map { $0.map { mu * mu * $0 } }
                for a in latent.indices { ct[a][a] += s * s }
                solved[key] = (condMean, invert(ct))
            }
            let (condMean, inv) = solved[key]!
            for (a, i) in latent.enumerated() {
                var g = 0.0
                for (b, j) in latent.enumerated() { g -= inv[a][b] * (x[e * d + j] - mu * condMean[b]) }
                score[e * d + i] = g
            }
            for i in obs { score[e * d + i] = 0 }
        }
    }
}

/// Gauss-Jordan inverse of a small symmetric positive definite matrix.
func invert(_ a: [[Double]]) -> [[Double]] {
    let n = a.count
    if n == 0 { return [] }
    var m = a.map { $0 + [Double](repeating: 0, count: n) }
    for i in 0..<n { m[i][n + i] = 1 }
    for col in 0..<n {
        let p = m[col][col]
        for k in 0..<(2 * n) { m[col][k] /= p }
        for r in 0..<n where r != col {
            let f = m[r][col]
            for k in 0..<(2 * n) { m[r][k] -= f * m[col][k] }
        }
    }
    return m.map { Array($0[n...]) }
}

func moments(_ xs: [Double]) -> (mean: Double, variance: Double) {
    let mean = xs.reduce(0, +) / Double(xs.count)
    return (mean, xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(xs.count - 1))
}

final class SamplerTests: XCTestCase {
    // 3 nodes, correlated
    let mean = [0.5, -1.0, 0.2]
    let cov = [[1.0, 0.6, 0.3], [0.6, 2.0, -0.4], [0.3, -0.4, 0.5]]

    /// Both integrators reproduce a conditional of a known Gaussian from its exact score:
    /// node 0 and 2 given node 1 = 0.7. Tolerances: mean 0.05, variance 10% (4,000 samples).
    /// The SDEs (Euler-Maruyama, DPM-Solver++(2M) SDE) forget their start; the ODEs are a deterministic map of the start N(0, s0^2), which for a
    /// Gaussian is x_0 = m + (x_T - mu_T m) sqrt(v / v_T): its expected moments are checked exactly
    /// (mean m (1 - mu_T sqrt(v / v_T)), variance v s0^2 / v_T), so the integrator itself is tested.
    func testIntegratorsMatchTheExactConditional() throws {
        let exact = [(0.5 + 0.6 / 2.0 * (0.7 + 1.0), 1.0 - 0.36 / 2), (0.2 - 0.4 / 2.0 * (0.7 + 1.0), 0.5 - 0.16 / 2)]
        for (sde, method, steps) in [(SDE.defaultVE, SamplerSettings.Method.sde, 200), (.defaultVE, .ode, 100),
                                     (.defaultVP, .sde, 500), (.defaultVP, .ode, 100),
                                     (.defaultVE, .edm, 18), (.defaultVE, .dpmpp2m, 20), (.defaultVP, .edm, 18), (.defaultVP, .dpmpp2m, 20),
                                     (.defaultVE, .dpmpp2mSDE, 30), (.defaultVP, .dpmpp2mSDE, 30)] {
            let score = GaussianScore(mean: mean, covariance: cov, sde: sde)
            let draws = try Sampler.sample(score, Conditioning(observed: [1: 0.7]), count: 4000,
                                           settings: SamplerSettings(method: method, steps: steps), key: RandomKey(seed: 11))
            XCTAssert(draws.allSatisfy { $0[1] == 0.7 }, "observed node must keep its value")
            for (node, (m, v)) in zip([0, 2], exact) {
                var (em, ev) = (m, v)
                if method != .sde && method != .dpmpp2mSDE {
                    let muT = sde.mean(1), vT = muT * muT * v + pow(sde.std(1), 2), s0 = sde.initialStd(dataVariance: 1)
                    em = m * (1 - muT * (v / vT).squareRoot())
                    ev = v * s0 * s0 / vT
                }
                let got = moments(draws.map { $0[node] })
                let what = "node \(node), \(sde.name) \(method.rawValue) \(steps) steps"
                XCTAssertEqual(got.mean, em, accuracy: 0.05, what)
                XCTAssertEqual(got.variance, ev, accuracy: 0.1 * ev, what)
            }
        }
    }

    /// Per-sample conditioning: sample j holds node 1 at its own value x_j (a ramp over the whole
    /// run, so a block reading another block's values is caught) and node 0 follows that conditional:
    /// residuals from mean 0.5 + 0.3 (x_j + 1) have mean 0 and variance 0.82 (1,200 samples, 3 blocks).
    func testPerSampleConditioning() throws {
        let score = GaussianScore(mean: mean, covariance: cov, sde: .defaultVE)
        let values = (0..<1200).map { -2.0 + 3.0 * Double($0) / 1200 }
        let draws = try Sampler.sample(score, Conditioning(perSample: [1: values]), count: 1200,
                                       settings: SamplerSettings(method: .sde, steps: 100), key: RandomKey(seed: 5))
        XCTAssertEqual(draws.map { $0[1] }, values, "each sample keeps its own observed value")
        let residuals = draws.indices.map { draws[$0][0] - (0.5 + 0.3 * (values[$0] + 1)) }
        let got = moments(residuals)
        XCTAssertEqual(got.mean, 0, accuracy: 0.05)
        XCTAssertEqual(got.variance, 0.82, accuracy: 0.1)
        // and the slope is the conditional's (0.3): a block using shifted values would flatten it
        let early = moments(Array(residuals[0..<400])).mean, late = moments(Array(residuals[800...])).mean
        XCTAssertEqual(early - late, 0, accuracy: 0.2)
        XCTAssertThrowsError(try Sampler.sample(score, Conditioning(observed: [1: 0.7], perSample: [1: values]), count: 10,
                                                settings: SamplerSettings(), key: RandomKey(seed: 5)))
        XCTAssertThrowsError(try Sampler.sample(score, Conditioning(perSample: [1: [0.7]]), count: 10,
                                                settings: SamplerSettings(), key: RandomKey(seed: 5)))
    }

    /// Sample j depends only on the key and j: the first 100 of 300 samples equal 100 samples drawn alone.
    func testSamplesDoNotDependOnCount() throws {
        let score = GaussianScore(mean: mean, covariance: cov, sde: .defaultVE)
        let settings = SamplerSettings(method: .sde, steps: 20)
        let a = try Sampler.sample(score, Conditioning(), count: 100, settings: settings, key: RandomKey(seed: 3))
        let b = try Sampler.sample(score, Conditioning(), count: 300, settings: settings, key: RandomKey(seed: 3))
        XCTAssertEqual(a, Array(b.prefix(100)))
    }

    /// Interval guidance on node 0 of N(0.5, 1) with node 1, 2 latent: every guided value lies in [0, 1]
    /// (within 0.02) and the mean matches the truncated normal's (0.5 by symmetry) within 0.05.
    func testIntervalGuidance() throws {
        let score = GaussianScore(mean: mean, covariance: cov, sde: .defaultVE)
        let conditioning = Conditioning(constraints: [IntervalConstraint(node: 0, lower: 0, upper: 1)])
        let draws = try Sampler.sample(score, conditioning, count: 2000, settings: SamplerSettings(method: .sde, steps: 200, resampling: 2),
                                       key: RandomKey(seed: 5))
        let x0 = draws.map { $0[0] }
        XCTAssert(x0.allSatisfy { $0 > -0.02 && $0 < 1.02 }, "range \(x0.min()!) ... \(x0.max()!)")
        XCTAssertEqual(moments(x0).mean, 0.5, accuracy: 0.05)
        // node 1 follows its conditional given node 0 in [0, 1]: mean -1 + 0.6 (E[x0] - 0.5) = -1
        XCTAssertEqual(moments(draws.map { $0[1] }).mean, -1, accuracy: 0.1)
    }

    /// EDM with stochastic churn forgets part of its start: its moments lie within 0.08 (mean) and
    /// 15% (variance) of the exact conditional (4,000 samples; the deterministic map's mean is 0.06 off).
    func testEDMChurnSamplesTheConditional() throws {
        let score = GaussianScore(mean: mean, covariance: cov, sde: .defaultVE)
        let settings = SamplerSettings(method: .edm, steps: 32, churn: 5)
        let draws = try Sampler.sample(score, Conditioning(observed: [1: 0.7]), count: 4000, settings: settings, key: RandomKey(seed: 12))
        let got = moments(draws.map { $0[0] }), exact = (0.5 + 0.3 * 1.7, 1.0 - 0.18)
        XCTAssertEqual(got.mean, exact.0, accuracy: 0.08)
        XCTAssertEqual(got.variance, exact.1, accuracy: 0.15 * exact.1)
        let deterministic = try Sampler.sample(score, Conditioning(observed: [1: 0.7]), count: 50,
                                               settings: SamplerSettings(method: .edm, steps: 32), key: RandomKey(seed: 12))
        XCTAssertNotEqual(draws.prefix(50).map { $0[0] }, deterministic.map { $0[0] }, "churn must add noise")
    }

    /// RePaint resampling under a constraint nothing comes near leaves the conditional as it is, under
    /// every sampler: node 0 and 2 given node 1 = 0.7, guided by x_0 <= 100 with 5 resampling steps
    /// (mean within 0.05, variance within 10%, 4,000 samples).
    func testResamplingLeavesTheConditionalUnchanged() throws {
        let exact = [(0.5 + 0.6 / 2.0 * (0.7 + 1.0), 1.0 - 0.36 / 2), (0.2 - 0.4 / 2.0 * (0.7 + 1.0), 0.5 - 0.16 / 2)]
        let score = GaussianScore(mean: mean, covariance: cov, sde: .defaultVE)
        let slack = Conditioning(observed: [1: 0.7], constraints: [LinearBoundConstraint(weights: [(0, 1)], lower: -.infinity, upper: 100)])
        for (method, steps) in [(SamplerSettings.Method.sde, 100), (.dpmpp2mSDE, 20), (.dpmpp2mSDE, 40), (.dpmpp2m, 20), (.edm, 20)] {
            let draws = try Sampler.sample(score, slack, count: 4000, settings: SamplerSettings(method: method, steps: steps, resampling: 5),
                                           key: RandomKey(seed: 21))
            for (node, (m, v)) in zip([0, 2], exact) {
                let got = moments(draws.map { $0[node] }), what = "node \(node), \(method.rawValue) \(steps) steps, 5 resampling"
                XCTAssertEqual(got.mean, m, accuracy: 0.05, what)
                XCTAssertEqual(got.variance, v, accuracy: 0.1 * v, what)
            }
        }
    }

    /// Interval guidance with RePaint resampling works under the noise-level samplers too.
    func testIntervalGuidanceUnderNoiseLevelSamplers() throws {
        let score = GaussianScore(mean: mean, covariance: cov, sde: .defaultVE)
        let conditioning = Conditioning(constraints: [IntervalConstraint(node: 0, lower: 0, upper: 1)])
        for method in [SamplerSettings.Method.edm, .dpmpp2m, .dpmpp2mSDE] {
            let draws = try Sampler.sample(score, conditioning, count: 2000, settings: SamplerSettings(method: method, steps: 40, resampling: 2),
                                           key: RandomKey(seed: 5))
            let x0 = draws.map { $0[0] }
            XCTAssert(x0.allSatisfy { $0 > -0.05 && $0 < 1.05 }, "\(method): range \(x0.min()!) ... \(x0.max()!)")
            XCTAssertEqual(moments(x0).mean, 0.5, accuracy: 0.06, "\(method)")
        }
    }

    /// Karras levels: steps of them from the largest scaled level down to sigma_low, rho-spaced, then 0;
    /// time(ofScaledStd:) inverts scaledStd for VE and VP; network evaluations per method.
    func testNoiseLevels() {
        for sde in [SDE.defaultVE, .defaultVP] {
            let levels = SamplerSettings(method: .edm, steps: 10).noiseLevels(for: sde)
            XCTAssertEqual(levels.count, 11)
            XCTAssertEqual(levels.first!, sde.scaledStd(1), accuracy: 1e-12)
            XCTAssertEqual(levels[9], 0.002, accuracy: 1e-12)
            XCTAssertEqual(levels.last, 0)
            XCTAssert(zip(levels, levels.dropFirst()).allSatisfy { $0 > $1 })
            let roots = levels.prefix(10).map { pow($0, 1.0 / 7) }
            for k in 1..<9 { XCTAssertEqual(roots[k + 1] - roots[k], roots[1] - roots[0], accuracy: 1e-9) }
            for t in [1e-3, 0.3, 0.9] { XCTAssertEqual(sde.time(ofScaledStd: sde.scaledStd(t)), t, accuracy: 1e-9, sde.name) }
        }
        XCTAssertEqual(SamplerSettings(method: .sde, steps: 40).networkEvaluations, 39)
        XCTAssertEqual(SamplerSettings(method: .ode, steps: 40).networkEvaluations, 78)
        XCTAssertEqual(SamplerSettings(method: .edm, steps: 10).networkEvaluations, 19)
        XCTAssertEqual(SamplerSettings(method: .dpmpp2m, steps: 10).networkEvaluations, 10)
        XCTAssertEqual(SamplerSettings(method: .dpmpp2mSDE, steps: 10).networkEvaluations, 10)
    }

    /// `sigmaHigh`: one step from the SDE's largest level to it, then the other steps - 1 rho-spaced
    /// from it to sigma_low; a level above the largest changes nothing. Every integrator still
    /// DPM-Solver++ integrator still reproduces the exact conditional from its exact score (as above:
    /// 4,000 draws; mean within 0.05, variance within 10%; the ODE's expected moments of its start
    /// N(0, s0^2) at 15). EDM's Heun step is refused one: across 15 to 3 it leaves the variance 25% wide
    /// (the exponential integrator is exact on the linear part, Heun is not).
    func testALowerFirstLevel() throws {
        let sde = SDE.defaultVE
        let levels = SamplerSettings(method: .dpmpp2m, steps: 10).overriding(sigmaHigh: 3).noiseLevels(for: sde)
        XCTAssertEqual(levels.count, 11)
        XCTAssertEqual(levels[0], 15, accuracy: 1e-9)
        XCTAssertEqual(levels[1], 3, accuracy: 1e-12)
        XCTAssertEqual(levels[9], 0.002, accuracy: 1e-12)
        XCTAssertEqual(levels.last, 0)
        let roots = levels[1...9].map { pow($0, 1.0 / 7) }
        for k in 1..<8 { XCTAssertEqual(roots[k + 1] - roots[k], roots[1] - roots[0], accuracy: 1e-9) }
        XCTAssertEqual(SamplerSettings(method: .edm, steps: 4, sigmaHigh: 100).noiseLevels(for: sde),
                       SamplerSettings(method: .edm, steps: 4).noiseLevels(for: sde), "a level above the largest changes nothing")
        XCTAssertEqual(SamplerSettings(method: .dpmpp2m, steps: 2, sigmaHigh: 3).noiseLevels(for: sde).count, 3)
        let exact = [(0.5 + 0.6 / 2.0 * (0.7 + 1.0), 1.0 - 0.36 / 2), (0.2 - 0.4 / 2.0 * (0.7 + 1.0), 0.5 - 0.16 / 2)]
        let score = GaussianScore(mean: mean, covariance: cov, sde: sde)
        for (method, steps) in [(SamplerSettings.Method.dpmpp2m, 20), (.dpmpp2mSDE, 30)] {
            let draws = try Sampler.sample(score, Conditioning(observed: [1: 0.7]), count: 4000,
                                           settings: SamplerSettings(method: method, steps: steps, sigmaHigh: 3), key: RandomKey(seed: 11))
            for (node, (m, v)) in zip([0, 2], exact) {
                var (em, ev) = (m, v)
                if method != .dpmpp2mSDE {
                    let vT = v + 225, s0 = sde.initialStd(dataVariance: 1)
                    em = m * (1 - (v / vT).squareRoot())
                    ev = v * s0 * s0 / vT
                }
                let got = moments(draws.map { $0[node] })
                XCTAssertEqual(got.mean, em, accuracy: 0.05, "node \(node), \(method.rawValue)")
                XCTAssertEqual(got.variance, ev, accuracy: 0.1 * ev, "node \(node), \(method.rawValue)")
            }
        }
        XCTAssertThrowsError(try Sampler.validate(SamplerSettings(method: .dpmpp2m, steps: 4, sigmaLow: 0.5, sigmaHigh: 0.4)))
        XCTAssertThrowsError(try Sampler.validate(SamplerSettings(method: .edm, steps: 4, sigmaHigh: 3))) { error in
            XCTAssert("\(error)".contains("sigma_high is for the DPM-Solver++ samplers"), "\(error)")
        }
    }

    /// Settings of the t-grid samplers encode as before (archives keep their bytes); the noise-level
    /// fields round-trip, and old settings decode with their defaults.
    func testSamplerSettingsCoding() throws {
        let old = try JSONEncoder().encode(SamplerSettings(method: .sde, steps: 40))
        XCTAssertEqual(Set((try JSONSerialization.jsonObject(with: old) as! [String: Any]).keys), ["method", "steps", "resampling"])
        XCTAssertEqual(try JSONDecoder().decode(SamplerSettings.self, from: old), SamplerSettings(method: .sde, steps: 40))
        let edm = SamplerSettings(method: .edm, steps: 9, rho: 5, sigmaLow: 0.01, churn: 3)
        XCTAssertEqual(try JSONDecoder().decode(SamplerSettings.self, from: JSONEncoder().encode(edm)), edm)
        XCTAssertThrowsError(try Sampler.sample(GaussianScore(mean: mean, covariance: cov, sde: .defaultVE), Conditioning(), count: 1,
                                                settings: SamplerSettings(method: .edm, steps: 9, rho: 0), key: RandomKey(seed: 1)))
    }

    func testObservedAndConstrainedIsRefused() {
        let score = GaussianScore(mean: mean, covariance: cov, sde: .defaultVE)
        XCTAssertThrowsError(try Sampler.sample(score, Conditioning(observed: [0: 1], constraints: [IntervalConstraint(node: 0, lower: 0, upper: 1)]),
                                                count: 10, settings: SamplerSettings(), key: RandomKey(seed: 1))) { e in
            XCTAssertEqual((e as? SbiError)?.code, .usage)
        }
    }

    /// d sigma^2 / dt = g^2 for VE; for VP, sigma^2 = 1 - mu^2 and d sigma^2/dt = beta (1 - sigma^2)... = beta mu^2.
    func testSDEConsistency() {
        let ve = SDE.defaultVE, vp = SDE.defaultVP
        for t in [0.1, 0.5, 0.9] {
            let h = 1e-6
            let dVar = (pow(ve.std(t + h), 2) - pow(ve.std(t - h), 2)) / (2 * h)
            XCTAssertEqual(dVar, pow(ve.diffusion(t), 2), accuracy: 1e-4 * dVar)
            XCTAssertEqual(pow(vp.std(t), 2) + pow(vp.mean(t), 2), 1, accuracy: 1e-12)
            let dVarVP = (pow(vp.std(t + h), 2) - pow(vp.std(t - h), 2)) / (2 * h)
            XCTAssertEqual(dVarVP, pow(vp.diffusion(t), 2) * pow(vp.mean(t), 2), accuracy: 1e-5)
        }
        XCTAssertEqual(ve.std(1), 15, accuracy: 1e-9)
        XCTAssertEqual(ve.std(0), 1e-4, accuracy: 1e-12)
    }
}
