import Foundation
import XCTest
@testable import SbiCore
@testable import SbiModel
@testable import SbiTasks
@testable import SbiTraining

/// `--noise-levels`: how training draws each example's noise level (`NoiseLevels`).
final class NoiseLevelDistributionTests: XCTestCase {
    /// `SDE.veTime` inverts the VE std (clamped to [tMin, 1]) and has no answer for a VP SDE.
    func testVETimeInvertsTheStd() {
        let sde = SDE.defaultVE
        for t in [SDE.tMin, 0.01, 0.3, 0.67, 0.999, 1] {
            XCTAssertEqual(sde.veTime(std: sde.std(t))!, t, accuracy: 1e-12)
        }
        XCTAssertEqual(sde.veTime(std: 1e-9), SDE.tMin)
        XCTAssertEqual(sde.veTime(std: 1e6), 1)
        XCTAssertNil(SDE.defaultVP.veTime(std: 1))
    }

    /// 20,000 draws: log-uniform gives t uniform on [tMin, 1) (mean 0.5, SE 0.002); log-normal gives
    /// ln sigma with EDM's mean -1.2 and sd 1.2 (SEs 0.0085 and 0.006; the clamp at sigma = 15, 3.2 sds
    /// out, moves neither visibly) and puts 94.5% of the levels between 0.03 and 3 against 38.6% under
    /// log-uniform (SEs 0.002 and 0.0035).
    func testTheDrawnLevelsFollowTheirDistribution() {
        let sde = SDE.defaultVE, n = 20_000
        func levels(_ d: NoiseLevels) -> [Double] {
            var rng = RandomStream(seed: 7)
            return (0..<n).map { _ in d.drawTime(sde: sde, &rng) }
        }
        let uniform = levels(.logUniform), normal = levels(.logNormal)
        XCTAssert(uniform.allSatisfy { $0 >= SDE.tMin && $0 < 1 })
        XCTAssertEqual(uniform.reduce(0, +) / Double(n), 0.5, accuracy: 0.008)
        XCTAssert(normal.allSatisfy { $0 >= SDE.tMin && $0 <= 1 })
        let logs = normal.map { Foundation.log(sde.std($0)) }
        let mean = logs.reduce(0, +) / Double(n)
        let sd = (logs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n - 1)).squareRoot()
        XCTAssertEqual(mean, NoiseLevels.logNormalMean, accuracy: 0.035)
        XCTAssertEqual(sd, NoiseLevels.logNormalStd, accuracy: 0.025)
        func share(_ ts: [Double]) -> Double {
            Double(ts.filter { (0.03...3).contains(sde.std($0)) }.count) / Double(n)
        }
        XCTAssertEqual(share(normal), 0.945, accuracy: 0.008)
        XCTAssertEqual(share(uniform), 0.386, accuracy: 0.014)
    }

    /// The trainer's examples carry the drawn times; the default keeps the method's stream (an objective
    /// built without the choice draws the same times as one given `.logUniform`); and the choice enters
    /// a checkpoint's identity only when set (earlier checkpoints keep theirs).
    func testTheTrainerUsesTheChoiceAndTheIdentityKeepsOldRuns() throws {
        let task = TwoMoonsTask()
        let rows = task.simulate(count: 50, key: RandomKey(seed: 3))
        let settings = NetworkSettings(parametrisation: .edm)
        let config = ScoreModel.transformerConfig(spec: task.spec, settings: settings)
        let model = ScoreModel(spec: task.spec, settings: settings, params: Arena(layout: Transformer(config: config).layout),
                               normalization: Normalization(fitting: rows, spec: task.spec))
        let maker = ExampleMaker(model: model, seriesNoise: .restored)
        func times(_ d: NoiseLevels?) -> [Float] {
            let batch = TokenBatch(capacity: 200, tokens: task.spec.nodeCount)
            let objective = d.map { DenoisingObjective(model: model, batch: batch, maker: maker, noiseLevels: $0) }
                ?? DenoisingObjective(model: model, batch: batch, maker: maker)
            var rng = RandomStream(seed: 11)
            for e in 0..<200 { objective.draw(example: e, row: maker.normalize(rows[e % 50]), rng: &rng) }
            return Array(UnsafeBufferPointer(start: batch.diffusionTime, count: 200))
        }
        XCTAssertEqual(times(nil), times(.logUniform))
        let normal = times(.logNormal)
        XCTAssertNotEqual(normal, times(nil))
        let medianSigma = SDE.defaultVE.std(Double(normal.sorted()[100]))
        XCTAssertEqual(Foundation.log(medianSigma), -1.2, accuracy: 0.3, "median level near exp(-1.2) (200 draws: SE of the median 0.1)")

        var training = TrainingConfig(steps: 10, seed: 1)
        let identity = TrainingCheckpoint.fingerprint(spec: task.spec, settings: settings, config: training, simulations: rows)
        let encoded = String(decoding: try JSONEncoder().encode(training), as: UTF8.self)
        XCTAssertFalse(encoded.contains("noiseLevels"), encoded)
        training.noiseLevels = .logNormal
        XCTAssertNotEqual(TrainingCheckpoint.fingerprint(spec: task.spec, settings: settings, config: training, simulations: rows), identity)
    }
}
