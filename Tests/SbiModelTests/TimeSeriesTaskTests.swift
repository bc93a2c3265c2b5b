import XCTest
@testable import SbiCore
@testable import SbiModel
@testable import SbiTasks

final class TimeSeriesTaskTests: XCTestCase {
    /// RK4 against the closed form of dy/dt = -y: exp(-t), error below 1e-8 at 4 substeps per 0.1.
    func testRungeKuttaAccuracy() {
        let grid = (0...10).map { Double($0) / 10 }
        let ys = rungeKutta4([1], grid: grid, substeps: 4) { _, y in [-y[0]] }
        for (t, y) in zip(grid, ys) { XCTAssertEqual(y[0], exp(-t), accuracy: 1e-8) }
    }

    func testLotkaVolterraRows() {
        let task = LotkaVolterraTask()
        XCTAssertEqual(task.spec.denseWidth, 4 + 150 + 150)
        let rows = task.simulate(count: 50, key: RandomKey(seed: 1))
        for r in rows {
            XCTAssertEqual(r.count, 304)
            XCTAssert(r.allSatisfy { $0.isFinite })
            XCTAssert(task.inPriorSupport(Array(r[0..<4])))
            XCTAssertEqual(r[4], 1, accuracy: 0.5)     // prey starts at 1 (noise 0.1)
            XCTAssertEqual(r[154], 0.5, accuracy: 0.5) // predator at 0.5
        }
        // noise is 0.1: the difference between neighbouring grid points of a smooth path is small
        let r = rows[0]
        let diffs = (5..<153).map { r[$0 + 1] - r[$0] }
        XCTAssertEqual(moments(diffs).variance.squareRoot(), 0.1 * 2.0.squareRoot(), accuracy: 0.05)
    }

    func testSIRDRows() {
        let task = SIRDTask()
        XCTAssertEqual(task.spec.denseWidth, 3 + 4 * 100)
        let rows = task.simulate(count: 50, key: RandomKey(seed: 2))
        for r in rows {
            XCTAssert(r.allSatisfy { $0.isFinite })
            XCTAssert(task.inPriorSupport(Array(r[0..<3])))
            XCTAssert(r[3..<103].allSatisfy { $0 > 0 && $0 < 1 }, "beta(t) = sigmoid(GP) lies in (0, 1)")
            XCTAssert(r[103...].allSatisfy { $0 > 0 }, "log-normal observations are positive")
            XCTAssertEqual(r[103], r[2], accuracy: 0.25 * r[2] + 1e-6)  // infected(0) = I0 up to 5% noise
        }
        // beta(t) is smooth: RBF length 7 on a grid of 0.5 days
        let beta = Array(rows[0][3..<103])
        let jumps = (0..<99).map { abs(beta[$0 + 1] - beta[$0]) }
        XCTAssertLessThan(jumps.max()!, 0.1)
    }
}
