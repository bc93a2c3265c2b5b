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
}
