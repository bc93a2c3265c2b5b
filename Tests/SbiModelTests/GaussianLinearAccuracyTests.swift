import Foundation
import XCTest
import SbiTestSupport
@testable import SbiArchive
@testable import SbiCore
@testable import SbiModel
@testable import SbiTasks

/// The shipped gaussian_linear model (fixtures/models/gaussian-linear.sbim, rebuilt by the command in
/// its model card) against the closed-form joint: theta ~ N(0, 0.1 I), x = theta + N(0, 0.1 I), pairs
/// (theta_i, x_i) independent. Tolerances: every conditional mean within 0.05 (the conditional std is
/// 0.22 to 0.32; 2,000 samples), every conditional variance within 20%. (Measured with this model:
/// posterior means within 0.02 and variances within 5%; likelihood within 0.012 and 10%.)
final class GaussianLinearAccuracyTests: XCTestCase {
    static var loaded: LoadedModel?

    var model: ScoreModel {
        get throws {
            if let l = Self.loaded { return l.model }
            let url = RepositoryPaths.root.appendingPathComponent("fixtures/models/gaussian-linear.sbim")
            let pins = try String(contentsOf: RepositoryPaths.root.appendingPathComponent("fixtures/models/PINS"), encoding: .utf8)
            guard let line = pins.split(separator: "\n").first(where: { $0.hasPrefix("gaussian-linear.sbim@sha256:") }) else {
                throw SbiError(.configuration, "fixtures/models/PINS lists no gaussian-linear.sbim")
            }
            let l = try ModelArchive.load(url.path + "@" + line.split(separator: "@")[1])
            Self.loaded = l
            return l.model
        }
    }

    let xo: [Double] = [0.3, -0.2, 0.5, 0.0, -0.4, 0.1, 0.25, -0.6, 0.45, -0.05]
    let thetaO: [Double] = [0.2, -0.3, 0.1, 0.4, -0.1, 0.35, -0.25, 0.05, 0.3, -0.45]

    func check(_ draws: [[Double]], node: Int, mean: Double, variance: Double, _ what: String,
               file: StaticString = #filePath, line: UInt = #line) {
        let m = moments(draws.map { $0[node] })
        XCTAssertEqual(m.mean, mean, accuracy: 0.05, "\(what) node \(node) mean", file: file, line: line)
        XCTAssertEqual(m.variance, variance, accuracy: 0.2 * variance, "\(what) node \(node) variance", file: file, line: line)
    }

    func observed(theta: [Int] = [], x: [Int] = []) -> [Int: Double] {
        var o: [Int: Double] = [:]
        for i in theta { o[i] = thetaO[i] }
        for i in x { o[10 + i] = xo[i] }
        return o
    }

    func testPosterior() throws {
        let draws = try Sampler.sample(try model, Conditioning(observed: observed(x: Array(0..<10))), count: 2000,
                                       settings: SamplerSettings(), key: RandomKey(seed: 1))
        for i in 0..<10 { check(draws, node: i, mean: xo[i] / 2, variance: 0.05, "posterior") }
    }

    func testLikelihood() throws {
        let draws = try Sampler.sample(try model, Conditioning(observed: observed(theta: Array(0..<10))), count: 2000,
                                       settings: SamplerSettings(), key: RandomKey(seed: 2))
        for i in 0..<10 { check(draws, node: 10 + i, mean: thetaO[i], variance: 0.1, "likelihood") }
    }

    /// theta_0..4 and x_5..9 given theta_5..9 and x_0..4.
    func testMixedConditional() throws {
        let draws = try Sampler.sample(try model, Conditioning(observed: observed(theta: Array(5..<10), x: Array(0..<5))),
                                       count: 2000, settings: SamplerSettings(), key: RandomKey(seed: 3))
        for i in 0..<5 { check(draws, node: i, mean: xo[i] / 2, variance: 0.05, "mixed theta") }
        for i in 5..<10 { check(draws, node: 10 + i, mean: thetaO[i], variance: 0.1, "mixed x") }
    }

    /// Posterior with theta_0 guided into [0.2, 0.6] (100 steps, 2 resampling steps, 1,000 samples):
    /// 99% of guided values lie in the interval (within 0.02),
    /// their mean matches the truncated normal's, the other parameters keep their exact posterior.
    func testIntervalGuidance() throws {
        let (a, b) = (0.2, 0.6)
        var conditioning = Conditioning(observed: observed(x: Array(0..<10)))
        conditioning.constraints = [IntervalConstraint(node: 0, lower: a, upper: b)]
        // guidance needs finer steps than plain sampling: 50 steps with 1 resampling leave 8% outside
        let draws = try Sampler.sample(try model, conditioning, count: 1000,
                                       settings: SamplerSettings(method: .sde, steps: 100, resampling: 2), key: RandomKey(seed: 4))
        let guided = draws.map { $0[0] }
        let inside = guided.filter { $0 >= a - 0.02 && $0 <= b + 0.02 }.count
        XCTAssertGreaterThanOrEqual(Double(inside) / 1000, 0.99, "range \(guided.min()!)...\(guided.max()!)")
        // truncated N(mu, s^2) on [a, b]: mean mu + s (phi(alpha) - phi(beta)) / (Phi(beta) - Phi(alpha))
        let mu = xo[0] / 2, s = 0.05.squareRoot()
        let alpha = (a - mu) / s, beta = (b - mu) / s
        let phi = { (z: Double) in exp(-z * z / 2) / (2 * Double.pi).squareRoot() }
        let cdf = { (z: Double) in 0.5 * erfc(-z / 2.0.squareRoot()) }
        let truncatedMean = mu + s * (phi(alpha) - phi(beta)) / (cdf(beta) - cdf(alpha))
        XCTAssertEqual(moments(guided).mean, truncatedMean, accuracy: 0.05)
        for i in 1..<10 { check(draws, node: i, mean: xo[i] / 2, variance: 0.05, "guided posterior") }
    }

    /// A polytope (two linear rows over theta_0, theta_1) and a soft equality on theta_2, given in the
    /// constraint language, against the exact answers: rejection from 400,000 exact posterior draws
    /// for the polytope, the product of the posterior and the tolerance's Gaussian (sd = tolerance / 2)
    /// for the soft equality. 1,000 guided samples (100 steps, 2 resampling steps). Guidance is an
    /// approximation and errs towards the inside of the polytope: measured (2,000 samples) means 0.014
    /// and 0.036 deeper in (0.1 and 0.26 truncated sd), variances 22% low, covariance within 0.0013.
    /// Tolerances: means within 0.06, variances within 35%, covariance within 0.004; >= 95% of samples
    /// inside the polytope; the soft equality's mean within 0.03; unconstrained parameters unchanged.
    func testLinearConstraintsMatchTheTruncatedGaussian() throws {
        let model = try self.model
        var plan = QueryPlan(spec: model.spec)
        for i in 0..<10 { try plan.observe(node: 10 + i, value: xo[i]) }
        for i in 0..<10 { try plan.target(node: i) }
        for text in ["theta[0] + theta[1] <= -0.1", "theta[0] - theta[1] >= 0.1", "theta[2] ~= 0.4 +- 0.05"] {
            try plan.constrain(ConstraintExpression(parsing: text))
        }
        let draws = try Sampler.sample(model, tokens: plan.tokens, plan.conditioning, count: 1000,
                                       settings: SamplerSettings(method: .sde, steps: 100, resampling: 2), key: RandomKey(seed: 5))
        // exact: rejection from N(x/2, 0.05) for (theta_0, theta_1)
        var rng = RandomStream(seed: 11)
        var accepted: [(Double, Double)] = []
        for _ in 0..<400_000 {
            let a = xo[0] / 2 + 0.05.squareRoot() * rng.normal(), b = xo[1] / 2 + 0.05.squareRoot() * rng.normal()
            if a + b <= -0.1 && a - b >= 0.1 { accepted.append((a, b)) }
        }
        XCTAssertGreaterThan(accepted.count, 50_000)
        let exact0 = moments(accepted.map(\.0)), exact1 = moments(accepted.map(\.1))
        let model0 = moments(draws.map { $0[0] }), model1 = moments(draws.map { $0[1] })
        let covariance = { (x: [Double], y: [Double]) -> Double in
            let mx = x.reduce(0, +) / Double(x.count), my = y.reduce(0, +) / Double(y.count)
            return zip(x, y).reduce(0) { $0 + ($1.0 - mx) * ($1.1 - my) } / Double(x.count - 1)
        }
        let exactCov = covariance(accepted.map(\.0), accepted.map(\.1)), modelCov = covariance(draws.map { $0[0] }, draws.map { $0[1] })
        let report = "exact means \(exact0.mean), \(exact1.mean) var \(exact0.variance), \(exact1.variance) cov \(exactCov); "
            + "guided \(model0.mean), \(model1.mean) var \(model0.variance), \(model1.variance) cov \(modelCov)"
        print("polytope on gaussian-linear: " + report)
        XCTAssertEqual(model0.mean, exact0.mean, accuracy: 0.06, report)
        XCTAssertEqual(model1.mean, exact1.mean, accuracy: 0.06, report)
        XCTAssertEqual(model0.variance, exact0.variance, accuracy: 0.35 * exact0.variance, report)
        XCTAssertEqual(model1.variance, exact1.variance, accuracy: 0.35 * exact1.variance, report)
        XCTAssertEqual(modelCov, exactCov, accuracy: 0.004, report)
        let inside = plan.plannedConstraints[0..<2].map { $0.fractionSatisfied(draws) }
        XCTAssertGreaterThanOrEqual(inside.min()!, 0.95, "satisfied: \(inside)")
        // soft equality: N(0.25, 0.05) x N(0.4, 0.025^2)
        let precision = 1 / 0.05 + 1 / (0.025 * 0.025), mean = (xo[2] / 2 / 0.05 + 0.4 / (0.025 * 0.025)) / precision
        let soft = moments(draws.map { $0[2] })
        XCTAssertEqual(soft.mean, mean, accuracy: 0.03, "soft equality: \(soft) against mean \(mean), variance \(1 / precision)")
        XCTAssertEqual(soft.variance, 1 / precision, accuracy: 0.5 / precision, "soft equality: \(soft)")
        for i in 3..<10 { check(draws, node: i, mean: xo[i] / 2, variance: 0.05, "constrained posterior") }
    }
}
