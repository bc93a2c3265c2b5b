import XCTest
@testable import SbiCore
@testable import SbiModel
@testable import SbiTasks
@testable import SbiTraining

/// `--parametrisation edm`: Karras et al. 2022's preconditioning at sigma_data = 1 (`Parametrisation`).
final class EDMParametrisationTests: XCTestCase {
    /// At F's training target the score is the denoising score matching target -eps / sigma and its
    /// Tweedie estimate x + sigma^2 score the clean value, at every noise level; `.noise` is unchanged.
    func testTheTargetGivesTheCleanValueAndTheScore() {
        for sigma in [1e-4, 0.01, 0.3, 1, 4, 15] {
            for (x0, eps) in [(0.7, -1.2), (-2.5, 0.4), (0.0, 2.0)] {
                let x = x0 + sigma * eps
                let target = (sigma * x0 - eps) / (sigma * sigma + 1).squareRoot()
                let (a, b) = Parametrisation.edm.scoreCoefficients(sigma: sigma)
                let score = a * x + b * target
                XCTAssertEqual(score, -eps / sigma, accuracy: 1e-9 * abs(eps / sigma))
                XCTAssertEqual(x + sigma * sigma * score, x0, accuracy: 1e-9 * max(1, abs(x)))
            }
            XCTAssertEqual(Parametrisation.edm.inputScale(sigma: sigma), 1 / (sigma * sigma + 1).squareRoot())
            XCTAssertEqual(Parametrisation.noise.inputScale(sigma: sigma), 1)
            XCTAssertEqual(Parametrisation.noise.scoreCoefficients(sigma: sigma).ofOutput, 1 / max(sigma, 1e-3))
        }
    }

    /// A network that outputs 0 everywhere is, under `.edm`, the exact score of standard normal data
    /// (D = x / (sigma^2 + 1)): its samples have the normalisation's mean and std. Under `.noise` the
    /// same zero network has score 0 and its samples keep the initial noise (sd 15 in normalised units).
    func testAZeroNetworkSamplesTheStandardNormalUnderEDM() throws {
        let task = TwoMoonsTask()
        let rows = task.simulate(count: 500, key: RandomKey(seed: 2))
        let norm = Normalization(fitting: rows, spec: task.spec)
        func draws(_ p: Parametrisation?) throws -> [[Double]] {
            let settings = NetworkSettings(parametrisation: p)
            let config = ScoreModel.transformerConfig(spec: task.spec, settings: settings)
            let zero = Arena(layout: Transformer(config: config).layout)
            let model = ScoreModel(spec: task.spec, settings: settings, params: zero, normalization: norm)
            return try Sampler.sample(model, Conditioning(), count: 4000, settings: SamplerSettings(method: .dpmpp2mSDE, steps: 24),
                                      key: RandomKey(seed: 4), threads: 1)
        }
        let edm = try draws(.edm), noise = try draws(nil)
        for node in 0..<task.spec.nodeCount {
            let z = edm.map { norm.normalize($0[node], node: node) }
            let m = moments(z)
            XCTAssertEqual(m.mean, 0, accuracy: 0.06, "node \(node)")   // 4 standard errors
            XCTAssertEqual(m.variance.squareRoot(), 1, accuracy: 0.05, "node \(node)")
            let sd = moments(noise.map { norm.normalize($0[node], node: node) }).variance.squareRoot()
            XCTAssertGreaterThan(sd, 5, "node \(node): the zero network under .noise leaves the noise")
        }
    }

    /// The trainer's `.edm` examples and loss: latent inputs are c_in (x_0 + sigma eps), observed ones
    /// clean; the loss is zero with zero gradient at F's target, and elsewhere sum (out - F)^2 /
    /// normalizer with gradient 2 (out - F) / normalizer on latent tokens, 0 on observed ones.
    func testTheTrainingExamplesAndLoss() throws {
        let task = TwoMoonsTask()
        let rows = task.simulate(count: 50, key: RandomKey(seed: 3))
        let settings = NetworkSettings(parametrisation: .edm)
        let config = ScoreModel.transformerConfig(spec: task.spec, settings: settings)
        let model = ScoreModel(spec: task.spec, settings: settings, params: Arena(layout: Transformer(config: config).layout),
                               normalization: Normalization(fitting: rows, spec: task.spec))
        let maker = ExampleMaker(model: model, seriesNoise: .restored)
        let batch = TokenBatch(capacity: 8, tokens: task.spec.nodeCount)
        let objective = DenoisingObjective(model: model, batch: batch, maker: maker)
        var rng = RandomStream(seed: 11)
        for e in 0..<8 { objective.draw(example: e, row: maker.normalize(rows[e]), rng: &rng) }
        let d = batch.tokens, sde = model.settings.sde
        var target = [Float](repeating: 0, count: 8 * d)
        var latent = 0
        for e in 0..<8 {
            let sigma = sde.std(Double(batch.diffusionTime[e]))
            for i in 0..<d {
                let r = e * d + i, x0 = Double(objective.cleanValues.base[r]), eps = Double(objective.eps.base[r])
                if batch.observed[r] != 0 {
                    XCTAssertEqual(batch.values[r], Float(x0))
                } else {
                    latent += 1
                    XCTAssertEqual(Double(batch.values[r]), (x0 + sigma * eps) / (sigma * sigma + 1).squareRoot(),
                                   accuracy: 1e-5 * max(1, abs(x0 + sigma * eps)))
                    target[r] = Float((sigma * x0 - eps) / (sigma * sigma + 1).squareRoot())
                }
            }
        }
        XCTAssertGreaterThan(latent, 0)
        var grad = [Float](repeating: 1, count: 8 * d)
        XCTAssertEqual(objective.loss(start: 0, count: 8, output: target, dOutput: &grad, normalizer: 5), 0, accuracy: 1e-12)
        XCTAssert(grad.allSatisfy { abs($0) < 1e-6 }, "no gradient at the target (up to Float rounding)")
        var out = target
        var expected = 0.0
        for r in 0..<(8 * d) {
            out[r] += Float(r % 3) * 0.25 - 0.2
            if batch.observed[r] == 0 { expected += Double(out[r] - target[r]) * Double(out[r] - target[r]) / 5 }
        }
        XCTAssertEqual(objective.loss(start: 0, count: 8, output: out, dOutput: &grad, normalizer: 5), expected, accuracy: 1e-6)
        for r in 0..<(8 * d) {
            let want = batch.observed[r] != 0 ? 0 : 2 * (out[r] - target[r]) / 5
            XCTAssertEqual(grad[r], want, accuracy: 1e-6)
        }
    }

    /// An archive's settings carry the parametrisation only when it is set, so older manifests (and
    /// checkpoint identities) keep their bytes; a manifest without it reads as `.noise`.
    func testSettingsCodingKeepsOldManifests() throws {
        let old = NetworkSettings()
        let json = String(decoding: try JSONEncoder().encode(old), as: UTF8.self)
        XCTAssertFalse(json.contains("parametrisation"), json)
        XCTAssertEqual(try JSONDecoder().decode(NetworkSettings.self, from: Data(json.utf8)).resolvedParametrisation, .noise)
        let edm = NetworkSettings(parametrisation: .edm)
        XCTAssertEqual(try JSONDecoder().decode(NetworkSettings.self, from: try JSONEncoder().encode(edm)), edm)
        XCTAssertEqual(NetworkSettings(parametrisation: .noise), old, "the default is stored as absent")
    }
}
