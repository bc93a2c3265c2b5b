import XCTest
@testable import SbiCore
@testable import SbiModel
@testable import SbiTasks
@testable import SbiTraining

/// `--bounded-parameters logit`: a parameter with a bounded prior support reaches the network as the
/// logit of its place in the support (`LogitBounds`, `Normalization.logit`).
final class BoundedParameterTests: XCTestCase {
    let bounds = LogitBounds(lower: 0, upper: 0.5)

    /// normalize and denormalize invert each other inside the support, values at or beyond a bound
    /// stay finite, and `slope` is dx/dz (a central difference).
    func testLogitNormalizationInvertsAndHasItsSlope() {
        let norm = Normalization(mean: [0.3, 2], std: [1.7, 3], logit: [bounds, nil])
        for x in [1e-4, 0.01, 0.2, 0.25, 0.37, 0.4999] {
            let z = norm.normalize(x, node: 0)
            XCTAssertEqual(norm.denormalize(z, node: 0), x, accuracy: 1e-12 * max(x, 1e-3))
            let h = 1e-5
            let difference = (norm.denormalize(z + h, node: 0) - norm.denormalize(z - h, node: 0)) / (2 * h)
            XCTAssertEqual(norm.slope(z, node: 0), difference, accuracy: 1e-6 * difference)
        }
        for x in [-1.0, 0, 0.5, 7] { XCTAssert(norm.normalize(x, node: 0).isFinite, "x \(x)") }
        XCTAssertEqual(norm.normalize(-1, node: 0), norm.normalize(0, node: 0))
        // far out z maps inside the support, never onto or past a bound's other side
        for z in [-40.0, -3, 0, 3, 40] {
            let x = norm.denormalize(z, node: 0)
            XCTAssert(x >= 0 && x <= 0.5, "z \(z) -> \(x)")
        }
        // the node without bounds is plain z-scoring
        XCTAssertEqual(norm.normalize(5, node: 1), 1)
        XCTAssertEqual(norm.slope(0.7, node: 1), 3)
    }

    /// Fitting with bounds z-scores the transformed values: the training rows' normalised values of a
    /// bounded parameter have mean 0 and sd 1; the data node is fitted as before.
    func testFittingZScoresTheTransformedValues() throws {
        let task = TwoMoonsTask()
        let rows = task.simulate(count: 2000, key: RandomKey(seed: 5))
        let logit = Normalization.parameterBounds(task.spec)
        XCTAssertEqual(logit.compactMap { $0 }.count, 2, "theta's two nodes have the prior's support")
        XCTAssertEqual(logit[0], LogitBounds(lower: -1, upper: 1))
        XCTAssertNil(logit[2], "data are never transformed")
        let fitted = Normalization(fitting: rows, spec: task.spec, logit: logit)
        let plain = Normalization(fitting: rows, spec: task.spec)
        for node in 0..<2 {
            let z = rows.map { fitted.normalize($0[node], node: node) }
            let mean = z.reduce(0, +) / Double(z.count)
            let sd = (z.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(z.count)).squareRoot()
            XCTAssertEqual(mean, 0, accuracy: 1e-9); XCTAssertEqual(sd, 1, accuracy: 1e-9)
            XCTAssertNotEqual(fitted.std[node], plain.std[node])
        }
        XCTAssertEqual(fitted.mean[2], plain.mean[2]); XCTAssertEqual(fitted.std[2], plain.std[2])
    }

    /// `logit-functions` bounds sird's beta(t) nodes only; `logit` every bounded parameter; `raw` none.
    func testLogitFunctionsBoundsFunctionNodesOnly() throws {
        let spec = try SIRDTask().spec.cappingMaxPoints(5)
        let all = try XCTUnwrap(BoundedParameters.logit.bounds(spec))
        let functions = try XCTUnwrap(BoundedParameters.logitFunctions.bounds(spec))
        XCTAssertNil(BoundedParameters.raw.bounds(spec))
        XCTAssertEqual(all.count, spec.variableOfNode.count); XCTAssertEqual(functions.count, all.count)
        for (node, v) in spec.variableOfNode.enumerated() {
            let variable = spec.variables[v]
            switch (variable.kind, variable.isFunctionOfTime) {
            case (.data, _): XCTAssertNil(all[node]); XCTAssertNil(functions[node])
            case (_, true): XCTAssertEqual(functions[node], LogitBounds(lower: 0, upper: 1)); XCTAssertEqual(all[node], functions[node])
            default: XCTAssertNotNil(all[node], variable.name); XCTAssertNil(functions[node], variable.name)
            }
        }
        XCTAssert(functions.contains { $0 != nil })
        XCTAssertFalse(BoundedParameters.logitFunctions.bounds(TwoMoonsTask().spec)!.contains { $0 != nil },
                       "two_moons has no function of time")
    }

    /// Samples of a model trained with the transform lie inside the prior's support even when the
    /// network knows nothing (4 steps); the same network read without it puts some outside.
    func testLogitModelSamplesStayInsideTheSupport() throws {
        let task = TwoMoonsTask()
        let rows = task.simulate(count: 200, key: RandomKey(seed: 1))
        var config = TrainingConfig(steps: 4, seed: 3)
        config.batchSize = 32; config.threads = 1; config.boundedParameters = .logit
        let (model, _) = try Trainer.train(spec: task.spec, simulations: rows, settings: NetworkSettings(), config: config) { _ in }
        XCTAssertNotNil(model.normalization.logit)
        let settings = SamplerSettings(method: .sde, steps: 20)
        // (a saturated sigmoid may round onto a bound: the closed support)
        let inside = { (draws: [[Double]]) in draws.filter { abs($0[0]) <= 1 && abs($0[1]) <= 1 }.count }
        let draws = try Sampler.sample(model, Conditioning(observed: [2: 0.1, 3: -0.2]), count: 400, settings: settings,
                                       key: RandomKey(seed: 9), threads: 1)
        XCTAssertEqual(inside(draws), draws.count)
        var raw = model.normalization
        raw.logit = nil
        let plain = ScoreModel(spec: model.spec, settings: model.settings, params: model.params, normalization: raw)
        let rawDraws = try Sampler.sample(plain, Conditioning(observed: [2: 0.1, 3: -0.2]), count: 400, settings: settings,
                                          key: RandomKey(seed: 9), threads: 1)
        XCTAssertLessThan(inside(rawDraws), rawDraws.count, "the untransformed reading is not bounded")
    }

    /// Guidance on a transformed node uses the local slope: its score increment equals that of a plain
    /// normalisation with the same physical value and slope at the sample (a linearisation there).
    /// At high noise (t 0.9), where the bound's pull is not saturated and so depends on the scale.
    func testGuidanceUsesTheLocalSlope() {
        let sde = SDE.defaultVE, t = 0.9, z = 0.9
        let norm = Normalization(mean: [-0.5], std: [1.3], logit: [bounds])
        let mu = sde.mean(t)
        // with a zero score, the Tweedie estimate is x / mu: put the sample at z
        let x0 = norm.denormalize(z, node: 0), slope = norm.slope(z, node: 0)
        let bound = LinearBoundConstraint(weights: [(0, 1)], lower: -.infinity, upper: x0 - 0.3 * slope)
        func increment(_ n: Normalization) -> Double {
            var score = [0.0]
            Sampler.addGuidance(sde, n, 1, Conditioning(constraints: [bound]), [z * mu], t, 1, &score)
            return score[0]
        }
        let linear = Normalization(mean: [x0 - slope * z], std: [slope])
        let transformed = increment(norm)
        XCTAssertLessThan(transformed, 0, "the bound pulls the sample down")
        XCTAssertEqual(transformed, increment(linear), accuracy: 1e-9 * abs(transformed))
        XCTAssertNotEqual(transformed, increment(Normalization(mean: [-0.5], std: [1.3])), accuracy: 1e-6 * abs(transformed))
    }
}
