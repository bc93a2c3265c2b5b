import Foundation
import XCTest
@testable import SbiCore
@testable import SbiModel
@testable import SbiTasks

/// The Hodgkin-Huxley simulator: deterministic per seed, a neuron that rests before the step current
/// and fires during it, finite features over the prior, and the energy token growing with spiking.
final class HodgkinHuxleyTaskTests: XCTestCase {
    let task = HodgkinHuxleyTask()
    /// The classic squid-axon values: Cm 1, gNa 120, gK 36 is outside the prior; use gK 20.
    let classic: [Double] = [1, 120, 20, 0.3, 50, -77, -65]

    func testSpecAndDeterminism() {
        let spec = task.spec
        XCTAssertEqual(spec.variables.map(\.name), ["Cm", "gNa", "gK", "gL", "ENa", "EK", "EL",
                                                    "spikes", "rest_mean", "rest_sd", "stim_mean", "stim_var", "stim_skew", "stim_kurtosis", "energy"])
        XCTAssertEqual(spec.denseWidth, 15)
        XCTAssertEqual(spec.variables[1].support, Support(60, 120))
        XCTAssertEqual(spec.edges.count, 7 * 8)
        var a = RandomStream(seed: 4), b = RandomStream(seed: 4), c = RandomStream(seed: 5)
        let x = task.sampleJoint(&a)
        XCTAssertEqual(x, task.sampleJoint(&b))
        XCTAssertNotEqual(x, task.sampleJoint(&c))
        XCTAssertTrue(task.inPriorSupport(Array(x[0..<7])))
    }

    func testRestsThenFiresUnderTheStepCurrent() {
        var rng = RandomStream(seed: 1)
        let (v, charge) = HodgkinHuxleyTask.trace(classic, &rng)
        XCTAssertEqual(v.count, 5000)
        let f = HodgkinHuxleyTask.summaries(v)
        XCTAssertEqual(f[1], -65, accuracy: 3, "rests near -65 mV before the stimulus: \(f)")
        XCTAssertLessThan(f[2], 1, "only noise at rest: \(f)")
        let before = v[0..<1200].max()!, during = v[1300..<3700].max()!
        XCTAssertLessThan(before, -55, "no spike before 50 ms")
        XCTAssertGreaterThan(during, 0, "spikes overshoot 0 mV during the stimulus")
        XCTAssertGreaterThanOrEqual(f[0], 2, "several spikes in 100 ms of 4 uA/cm2: \(f)")
        XCTAssertLessThan(charge, 0, "sodium current flows inward")
        XCTAssertGreaterThan(f[3], f[1], "depolarised on average during the stimulus: \(f)")
    }

    /// The integration stays stable over the prior: no trace of 200 prior draws, nor of the prior's
    /// corner of largest sodium and smallest capacitance (where explicit Euler reached the +100 mV
    /// clip), reaches the +-100 mV clip or rises past E_Na by more than the noise.
    func testIntegrationStaysStableOverThePrior() {
        var rng = RandomStream(seed: 12)
        var clipped = 0
        for k in 0..<201 {
            let theta = k == 200 ? [1, 120, 10, 0.1, 70, -100, -60] : HodgkinHuxleyTask.parameters.map { rng.uniform($0.1, $0.2) }
            let (v, _) = HodgkinHuxleyTask.trace(theta, &rng)
            if v.contains(where: { abs($0) >= 100 || $0 > theta[4] + 2 }) { clipped += 1; print("unstable: draw \(k), theta \(theta), max \(v.max()!)") }
        }
        XCTAssertEqual(clipped, 0, "traces reaching the clip")
    }

    /// Over 200 prior draws: every feature finite, spike counts whole, energy positive and larger
    /// (on average) for runs that spike more.
    func testFeaturesOverThePrior() {
        let rows = task.simulate(count: 200, key: RandomKey(seed: 9))
        XCTAssertTrue(rows.allSatisfy { $0.allSatisfy(\.isFinite) })
        XCTAssertTrue(rows.allSatisfy { $0[7] == $0[7].rounded() && $0[7] >= 0 })
        XCTAssertTrue(rows.allSatisfy { $0[14] > 0 })
        let spiking = rows.filter { $0[7] >= 3 }, quiet = rows.filter { $0[7] == 0 }
        XCTAssertGreaterThan(spiking.count, 20, "the prior covers firing neurons")
        XCTAssertGreaterThan(quiet.count, 5, "and silent ones")
        let mean = { (r: [[Double]]) in r.reduce(0) { $0 + $1[14] } / Double(r.count) }
        XCTAssertGreaterThan(mean(spiking), mean(quiet))
    }
}
