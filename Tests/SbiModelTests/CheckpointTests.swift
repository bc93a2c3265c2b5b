import Foundation
import XCTest
import SbiTestSupport
@testable import SbiCore
@testable import SbiModel
@testable import SbiTasks
@testable import SbiTraining

/// Training that stops (signal, end of a session) and continues from its checkpoint ends with the
/// weights of an uninterrupted run; checkpoints of other runs and damaged ones are refused.
final class CheckpointTests: TemporaryDirectoryTestCase {
    var task: any SimulationTask = SIRDTask()
    lazy var rows = task.simulate(count: 40, key: RandomKey(seed: 3))

    func config(seed: UInt64 = 1) -> TrainingConfig {
        var c = TrainingConfig(steps: 12, seed: seed)
        c.batchSize = 6
        c.threads = 1
        c.validationChecks = 4
        return c
    }

    func weights(_ m: ScoreModel) -> [Float] { Array(UnsafeBufferPointer(start: m.params.base, count: m.params.count)) }

    /// Stops after `stops` polls (counted across steps), or never when nil.
    func policy(stopAt stops: Int?) -> CheckpointPolicy {
        final class Counter: @unchecked Sendable { var n = 0 }
        let counter = Counter()
        return CheckpointPolicy(path: path("run.checkpoint"), everySeconds: 1e9, stopRequested: {
            counter.n += 1
            return stops.map { counter.n >= $0 } ?? false
        })
    }

    func train(_ c: TrainingConfig, _ p: CheckpointPolicy?, preset: TransformerConfig.Preset = .small) throws -> (ScoreModel, TrainingSummary) {
        try Trainer.train(spec: task.spec, simulations: rows, settings: NetworkSettings(preset: preset), config: c,
                          checkpoint: p) { _ in }
    }

    func testResumedRunEqualsUninterruptedRun() throws {
        let (straight, straightReport) = try train(config(), nil)
        XCTAssertThrowsError(try train(config(), policy(stopAt: 5))) { error in
            XCTAssertEqual((error as? SbiError)?.code, .temporary)
            XCTAssertTrue("\(error)".contains("step 5 of 12"), "\(error)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("run.checkpoint")))
        // a second interruption of the resumed run, then the rest
        XCTAssertThrowsError(try train(config(), policy(stopAt: 3)))
        let (resumed, report) = try train(config(), policy(stopAt: nil))
        XCTAssertEqual(report.steps, 12)
        XCTAssertEqual(report.bestValidationStep, straightReport.bestValidationStep)
        XCTAssertEqual(report.finalTrainLoss, straightReport.finalTrainLoss)
        // (counts, not the arrays: a failure should not print a million weights)
        let a = weights(resumed), b = weights(straight), other = weights(try train(config(seed: 2), nil).0)
        XCTAssertEqual(zip(a, b).filter { $0 != $1 }.count, 0, "weights that differ from the uninterrupted run")
        XCTAssertGreaterThan(zip(a, other).filter { $0 != $1 }.count, a.count / 2)
    }

    func testResumedFixedSizeRun() throws {
        task = GaussianLinearTask()
        try testResumedRunEqualsUninterruptedRun()
    }

    func testCheckpointOfAnotherRunIsRefused() throws {
        XCTAssertThrowsError(try train(config(), policy(stopAt: 2)))
        XCTAssertThrowsError(try train(config(seed: 9), policy(stopAt: nil))) { error in
            XCTAssertEqual((error as? SbiError)?.code, .usage)
            XCTAssertTrue("\(error)".contains("belongs to another training run"), "\(error)")
        }
        // another network size: the same refusal (not a complaint about the weight count)
        XCTAssertThrowsError(try train(config(), policy(stopAt: nil), preset: .large)) { error in
            XCTAssertEqual((error as? SbiError)?.code, .usage)
            XCTAssertTrue("\(error)".contains("belongs to another training run"), "\(error)")
        }
        // a file that is not a checkpoint at all is left alone, and named
        try "precious data".write(toFile: path("run.checkpoint"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try train(config(), policy(stopAt: nil))) { error in
            XCTAssertEqual((error as? SbiError)?.code, .usage)
            XCTAssertTrue("\(error)".contains("is not a sbiwatch training checkpoint"), "\(error)")
        }
        XCTAssertEqual(try String(contentsOfFile: path("run.checkpoint"), encoding: .utf8), "precious data")
    }

    func testDamagedCheckpointIsRefused() throws {
        XCTAssertThrowsError(try train(config(), policy(stopAt: 2)))
        let url = dir.appendingPathComponent("run.checkpoint")
        var data = try Data(contentsOf: url)
        data[data.count - 3] ^= 0x40
        try data.write(to: url)
        XCTAssertThrowsError(try train(config(), policy(stopAt: nil))) { error in
            XCTAssertEqual((error as? SbiError)?.code, .badInput)
            XCTAssertTrue("\(error)".contains("damaged (checksum mismatch)"), "\(error)")
        }
        // a header edited into valid JSON (an earlier step) is caught by the checksum too
        data[data.count - 3] ^= 0x40
        // the edit is made on the bytes (the header is followed by binary weights, not text)
        let needle = Data("\"step\":2,".utf8)
        let found = try XCTUnwrap(data.range(of: needle), "no \"step\":2, in the header")
        var edited = data
        edited[found.lowerBound + needle.count - 2] = UInt8(ascii: "1")
        try edited.write(to: url)
        XCTAssertThrowsError(try train(config(), policy(stopAt: nil))) { error in
            XCTAssertTrue("\(error)".contains("damaged (checksum mismatch)"), "\(error)")
        }
        try data.prefix(100).write(to: url)
        XCTAssertThrowsError(try train(config(), policy(stopAt: nil))) { error in
            XCTAssertTrue("\(error)".contains("damaged"), "\(error)")
        }
    }
}
