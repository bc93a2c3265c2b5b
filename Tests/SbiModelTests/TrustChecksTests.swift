import SbiChecks
import SbiCore
import SbiModel
import SbiTasks
import XCTest

/// The SBC rank test (ECDF band), the out-of-distribution check and the verdict, on inputs whose
/// answer is known.
final class TrustChecksTests: XCTestCase {
    func uniformRanks(_ n: Int, draws: Int, seed: UInt64) -> [Int] {
        var rng = RandomStream(key: RandomKey(seed: seed))
        return (0..<n).map { _ in Int(rng.nextUInt64() % UInt64(draws + 1)) }
    }

    /// Uniform ranks: the band holds the uniform CDF, and the test rejects about 5% of uniform sets
    /// (200 sets: 5% has a standard error of 1.5 points, so more than 11% would be a failing band).
    func testUniformRanksPassAtTheNominalRate() {
        var rejected = 0
        for s in 0..<200 {
            let r = RankUniformity.test(ranks: uniformRanks(200, draws: 99, seed: UInt64(s)), draws: 99, simulations: 500, seed: UInt64(1000 + s))
            if !r.passed { rejected += 1 }
            XCTAssert(zip(r.bandLower, r.bandUpper).allSatisfy { $0 < 0 && $1 > 0 })
        }
        XCTAssertLessThanOrEqual(rejected, 22, "\(rejected) of 200 uniform rank sets rejected")
        XCTAssertGreaterThanOrEqual(rejected, 2, "\(rejected) of 200 uniform rank sets rejected: the band is too wide")
    }

    /// Ranks of an overdispersed posterior pile up in the middle, of an overconfident one at both
    /// ends, of a biased one at one end: each fails.
    func testNonUniformRanksFail() {
        var rng = RandomStream(key: RandomKey(seed: 9))
        let draws = 99
        func rank(_ u: Double) -> Int { min(draws, max(0, Int(u * Double(draws + 1)))) }
        let middle = (0..<200).map { _ in rank(0.5 + 0.15 * rng.normal()) }
        let ends = (0..<200).map { _ -> Int in let u = rng.uniform(); return rank(u < 0.5 ? u * u : 1 - (1 - u) * (1 - u)) }
        let biased = (0..<200).map { _ in rank(pow(rng.uniform(), 1.6)) }
        for (name, ranks) in [("overdispersed", middle), ("overconfident", ends), ("biased", biased)] {
            let r = RankUniformity.test(ranks: ranks, draws: draws)
            XCTAssertFalse(r.passed, "\(name) ranks passed (max deviation \(r.maxDeviation))")
            XCTAssertGreaterThan(r.maxDeviation, 0.08, name)
        }
    }

    /// Prior predictive draws get uniform conformal p-values (false alarms at the nominal 5% on 300
    /// cases, standard error 1.3 points); data in the wrong units get the smallest p-value.
    func testOutOfDistributionIsCalibrated() {
        let task = GaussianLinearTask(), spec = task.spec
        let x = spec.variableIndex(named: "x")!, width = spec.variables[x].size
        let points = (0..<width).map { DensePoint(variable: x, element: $0) }
        let reference = ReferenceSet(origin: "test", rows: task.simulate(count: 200, key: RandomKey(seed: 1)))
        let refValues = reference.values(at: points, spec: spec)
        var alarms = 0
        var rng = RandomStream(seed: 3)
        for row in task.simulate(count: 300, key: RandomKey(seed: 2)) {
            let observed = points.map { $0.value(in: row.map { Float($0) }, spec: spec, offsets: spec.denseOffsets, rng: &rng) }
            if OutOfDistribution.test(observed: observed, reference: refValues).pValue < 0.05 { alarms += 1 }
        }
        XCTAssert((6...27).contains(alarms), "\(alarms) of 300 well-specified cases flagged")
        let scaled = task.simulate(count: 1, key: RandomKey(seed: 3))[0][(spec.denseOffsets[x])...].map { $0 * 100 }
        XCTAssertEqual(OutOfDistribution.test(observed: Array(scaled), reference: refValues).pValue, 1.0 / 201, accuracy: 1e-12)
    }

    /// The verdict: Šidák-combined p-values decide ok / caution / unreliable; a model without a
    /// calibration makes it at least caution.
    func testVerdictLevels() {
        func check(_ p: Double) -> Check { Check(name: "c", statistic: 1, pValue: p, threshold: 0.05, detail: "flagged \(p)") }
        XCTAssertEqual(Verdict(checks: [check(0.5), check(0.2)], modelCautions: []).level, .ok)
        XCTAssertEqual(Verdict(checks: [check(0.02), check(0.9)], modelCautions: []).level, .caution)   // 1 - 0.98^2 = 0.0396
        XCTAssertEqual(Verdict(checks: [check(0.03), check(0.9)], modelCautions: []).level, .ok)        // 0.0591
        XCTAssertEqual(Verdict(checks: [check(0.001), check(0.9)], modelCautions: []).level, .unreliable)
        let uncalibrated = Verdict(checks: [check(0.5)], modelCautions: ["no calibration"])
        XCTAssertEqual(uncalibrated.level, .caution)
        XCTAssertEqual(uncalibrated.reasons, ["no calibration"])
        XCTAssertEqual(Verdict(checks: [], modelCautions: []).level, .caution)
    }

    /// With a verdict null the combined p-value is the file's smallest p-value ranked among the
    /// held-out cases' smallest: (1 + #{null <= min p}) / (n + 1); without one, Šidák's.
    func testVerdictRanksTheSmallestPValueAmongHeldOutMinima() {
        func check(_ p: Double) -> Check { Check(name: "c", statistic: 1, pValue: p, threshold: 0.05, detail: "flagged \(p)") }
        let null = (1...100).map { Double($0) / 100 }
        let caution = Verdict(checks: [check(0.03), check(0.9)], modelCautions: [], nullMinima: null)
        XCTAssertEqual(caution.combinedPValue!, 3.5 / 101, accuracy: 1e-12, "two cases below 0.03, one tied: counted half")
        XCTAssertEqual(caution.combination, .heldOut)
        XCTAssertEqual(caution.level, .caution)
        XCTAssertEqual(Verdict(checks: [check(0.03), check(0.9)], modelCautions: []).combination, .sidak)
        XCTAssertEqual(Verdict(checks: [check(0.03), check(0.9)], modelCautions: []).level, .ok)   // Šidák: 0.0591
        XCTAssertEqual(Verdict(checks: [check(0.06)], modelCautions: [], nullMinima: null).level, .ok)           // 6.5/101
        XCTAssertEqual(Verdict(checks: [check(0.001)], modelCautions: [], nullMinima: null).level, .unreliable)  // 1/101
        // tied with the most extreme held-out case the rank gives 1.5/136; Šidák's, smaller, carries the tail
        let floor = [0.002] + (1...134).map { 0.01 + Double($0) / 140 }
        let tied = Verdict(checks: [check(0.002), check(0.6)], modelCautions: [], nullMinima: floor)
        XCTAssertEqual(tied.combinedPValue!, 1 - 0.998 * 0.998, accuracy: 1e-12)
        XCTAssertEqual(tied.level, .unreliable)
        XCTAssertEqual(Verdict(checks: [check(0.003), check(0.6)], modelCautions: [], nullMinima: floor).combinedPValue!, 2.0 / 136,
                       accuracy: 1e-12, "inside the cases' range the rank alone")
    }

    /// Calibrated predictive p-values share a floor, 1/(k+1): held-out cases at the floor tie with a file
    /// far off every case. Tied cases count half (the mid-rank): ten of them no longer hold such a
    /// file over 0.05 (counted whole: 11/201), and three of them, as sird's null has, keep a file at
    /// the floor `caution` (a tie-break that ranked it below all three made it `unreliable`).
    func testVerdictCountsTiedHeldOutCasesHalf() {
        func check(_ p: Double) -> Check { Check(name: "c", statistic: 1, pValue: p, threshold: 0.05, detail: "flagged \(p)") }
        let floor = 1.0 / 101
        let null = [0.002, 0.004] + [Double](repeating: floor, count: 8) + (1...190).map { 0.01 + Double($0) / 200 }
        let checks = [check(floor), check(0.5)]
        let verdict = Verdict(checks: checks, modelCautions: [], nullMinima: null)
        XCTAssertEqual(verdict.combinedPValue!, 7.0 / 201, accuracy: 1e-12, "2 below, 8 tied: (1 + 2 + 4) / 201")
        XCTAssertEqual(verdict.level, .caution)
        // sird's null: three cases at the floor, none below; a file at the floor is caution, never unreliable
        let sird = [Double](repeating: floor, count: 3) + (1...197).map { 0.02 + Double($0) / 200 }
        let atFloor = Verdict(checks: [check(floor), check(0.4), check(0.7)], modelCautions: [], nullMinima: sird)
        XCTAssertEqual(atFloor.combinedPValue!, min(2.5 / 201, Verdict.sidak(smallest: floor, count: 3)), accuracy: 1e-12)
        XCTAssertEqual(atFloor.level, .caution)
        // cases strictly more extreme count whole; a file beyond every case gets Šidák's tail
        XCTAssertEqual(Verdict(checks: [check(0.003)], modelCautions: [], nullMinima: null).combinedPValue!, 2.0 / 201, accuracy: 1e-12)
        let beyond = Verdict(checks: [check(0.001), check(0.5)], modelCautions: [], nullMinima: null)
        XCTAssertEqual(beyond.combinedPValue!, Verdict.sidak(smallest: 0.001, count: 2), accuracy: 1e-12, "Šidák's, under the rank's 1/201")
        XCTAssertEqual(beyond.level, .unreliable)
    }

    /// Each held-out case's p-values are computed as a file's: the predictive one calibrated against
    /// the other cases (itself left out) nearest its design; a check some case lacks gives no null.
    func testVerdictNullLeavesEachCaseOut() {
        var calibration = ModelCalibration.skipped("test")
        let raw = [0.1, 0.5, 0.9], ood = [0.2, 0.05, 0.9]
        calibration.verdictNull = zip(raw, ood).map { r, o in
            VerdictNullCase(outOfDistribution: o, predictive: ["a": PredictiveNullCase(pValue: r, largestGap: 0, trailingGap: 0)])
        }
        let predictive = calibration.verdictNullMinima(for: ["posterior_predictive:a"])!
        XCTAssertEqual(predictive, [1.0 / 3, 2.0 / 3, 1.0])
        XCTAssertEqual(calibration.verdictNullMinima(for: ["posterior_predictive:a", "out_of_distribution"])!, [0.2, 0.05, 0.9])
        XCTAssertNil(calibration.verdictNullMinima(for: ["posterior_predictive:b"]))
        calibration.verdictNull![1].outOfDistribution = nil
        XCTAssertNil(calibration.verdictNullMinima(for: ["out_of_distribution"]))
    }

    /// Three checks that read the same evidence (identical p-values): Šidák treats them as
    /// independent and flags about 1.7% of well-specified files; ranked among 1,000 held-out cases
    /// the verdict flags about 5% (2,000 files: one standard error of the rate is 0.005, and the
    /// null's own 5% quantile adds about 0.007).
    func testHeldOutVerdictHoldsItsLevelUnderCorrelatedChecks() {
        var rng = RandomStream(key: RandomKey(seed: 41))
        var calibration = ModelCalibration.skipped("test")
        calibration.verdictNull = (0..<1000).map { _ in
            let u = rng.uniform(0, 1), design = PredictiveNullCase(pValue: u, largestGap: 0, trailingGap: 0)
            return VerdictNullCase(outOfDistribution: u, predictive: ["a": design, "b": design])
        }
        let names: Set = ["out_of_distribution", "posterior_predictive:a", "posterior_predictive:b"]
        let minima = calibration.verdictNullMinima(for: names)!
        calibration.predictiveNullCases = ["a": calibration.verdictNull!.map { $0.predictive["a"]! }]
        var heldOut = 0, sidak = 0
        for _ in 0..<2000 {
            let u = rng.uniform(0, 1)
            // a file's predictive p-value, calibrated as the pipeline does
            let predictive = calibration.calibratedPredictivePValue(u, variable: "a", largestGap: 0, trailingGap: 0)!
            let checks = [u, predictive, predictive].map { Check(name: "c", statistic: nil, pValue: $0, threshold: 0.05, detail: "") }
            if Verdict(checks: checks, modelCautions: [], nullMinima: minima).level != .ok { heldOut += 1 }
            if Verdict(checks: checks, modelCautions: []).level != .ok { sidak += 1 }
        }
        print("held-out verdict flags \(heldOut) of 2000 files, Šidák \(sidak)")
        XCTAssert((60...140).contains(heldOut), "held-out verdict flagged \(heldOut) of 2000 (expected about 100)")
        XCTAssertLessThan(sidak, 60, "Šidák flagged \(sidak) of 2000 (expected about 34)")
    }

    /// The design a series is matched on: the longest unobserved stretch, ends included.
    func testLargestGap() {
        XCTAssertEqual(largestGap([9, 2, 4], lower: 0, upper: 10), 0.5, accuracy: 1e-12)
        XCTAssertEqual(largestGap([0, 5, 10], lower: 0, upper: 10), 0.5, accuracy: 1e-12)
        XCTAssertEqual(largestGap([1, 2, 3], lower: 0, upper: 10), 0.7, accuracy: 1e-12)
        XCTAssertEqual(largestGap([], lower: 0, upper: 10), 1)
        XCTAssertEqual(largestGap([3], lower: 3, upper: 3), 0)
    }

    /// The calibration pass observes series whole, with an interior gap, and cut short, a third each,
    /// always with between half the most and the most times inside the domain: by default the trained
    /// maximum, at most `TimeAxis.filePoints` (a model trained for dense grids is observed as files come).
    func testCalibrationDesignsIncludeGapsAndForecasts() {
        let axis = TimeAxis(lower: 0, upper: 15, grid: 61, maxPoints: 61)
        var rng = RandomStream(key: RandomKey(seed: 5))
        let counts = (0..<600).map { _ in Calibration.seriesDesign(axis, rng: &rng).count }
        XCTAssertEqual(counts.max(), TimeAxis.filePoints, "at most 20 times, and 20 do occur")
        XCTAssert(counts.allSatisfy { $0 >= 1 })
        var shortened = 0, gapped = 0
        let n = 3000
        for _ in 0..<n {
            let times = Calibration.seriesDesign(axis, most: 200, rng: &rng)   // dense: natural spacings are small
            XCTAssert(times.allSatisfy { (0...15).contains($0) } && times == times.sorted())
            XCTAssert(times.count <= 200 && times.count >= 70)   // at least 100, less a gap of at most 30%
            if times.last! < 0.9 * 15 { shortened += 1 }
            if zip(times, times.dropFirst()).contains(where: { $1 - $0 >= 1.5 }) { gapped += 1 }
        }
        // a third each (standard error 0.009); 100 uniform times leave 10% of the domain empty with
        // probability below 1e-4
        XCTAssertEqual(Double(shortened) / Double(n), 1.0 / 3, accuracy: 0.04)
        XCTAssertEqual(Double(gapped) / Double(n), 1.0 / 3, accuracy: 0.04)
    }

    /// A file's raw predictive p-value is calibrated against the held-out cases of a design like its
    /// own: the half nearest in largest gap (ties included), not the whole null.
    func testPredictiveNullIsMatchedOnDesign() {
        let whole = (0..<100).map { PredictiveNullCase(pValue: 0.3 + 0.7 * Double($0) / 99, largestGap: 0.15) }
        let gappy = (0..<100).map { PredictiveNullCase(pValue: 0.01 + 0.69 * Double($0) / 99, largestGap: 0.4) }
        var c = ModelCalibration.skipped("test")
        c.predictiveNullCases = ["prey": whole + gappy]
        c.predictiveNull = ["prey": (whole + gappy).map(\.pValue).sorted()]
        // a whole series with raw p = 0.2 is more extreme than every whole-series case
        XCTAssertEqual(c.calibratedPredictivePValue(0.2, variable: "prey", largestGap: 0.16)!, 1.0 / 101, accuracy: 1e-12)
        // a gappy series with the same raw p is common among gappy cases (28 of 100 at most 0.2)
        let gappyP = c.calibratedPredictivePValue(0.2, variable: "prey", largestGap: 0.38)!
        XCTAssertEqual(gappyP, Double(1 + gappy.filter { $0.pValue <= 0.2 }.count) / 101, accuracy: 1e-12)
        XCTAssertGreaterThan(gappyP, 0.2)
        // every case ties (fixed-size data): the whole null is used
        XCTAssertEqual(ModelCalibration.nearestHalf(whole, to: PredictiveNullCase(pValue: 0.5, largestGap: 0)).count, 100)
        // archives without designs compare with the whole null
        c.predictiveNullCases = nil
        XCTAssertEqual(c.calibratedPredictivePValue(0.2, variable: "prey", largestGap: 0.38)!,
                       Double(1 + gappy.filter { $0.pValue <= 0.2 }.count) / 201, accuracy: 1e-12)
        XCTAssertNil(c.calibratedPredictivePValue(0.2, variable: "predator", largestGap: 0.38))
    }

    /// A series cut short and one with an interior gap of the same length are matched to their own
    /// kind of held-out case; archives without trailing gaps fall back to the largest gap alone.
    func testPredictiveNullSeparatesTrailingFromInteriorGaps() {
        let interior = (0..<100).map { PredictiveNullCase(pValue: 0.3 + 0.7 * Double($0) / 99, largestGap: 0.25, trailingGap: 0.02) }
        let cut = (0..<100).map { PredictiveNullCase(pValue: 0.01 + 0.69 * Double($0) / 99, largestGap: 0.3125, trailingGap: 0.3125) }
        var c = ModelCalibration.skipped("test")
        c.predictiveNullCases = ["dead": interior + cut]
        let atMostInCut = cut.filter { $0.pValue <= 0.2 }.count
        // a file cut short (trailing gap 0.28) is compared with the cut-short cases only
        XCTAssertEqual(c.calibratedPredictivePValue(0.2, variable: "dead", largestGap: 0.28125, trailingGap: 0.28125)!,
                       Double(1 + atMostInCut) / 101, accuracy: 1e-12)
        // the same largest gap in the interior is compared with the interior cases: none is as extreme
        XCTAssertEqual(c.calibratedPredictivePValue(0.2, variable: "dead", largestGap: 0.28125, trailingGap: 0.01)!,
                       1.0 / 101, accuracy: 1e-12)
        XCTAssertEqual(trailingGap([2, 9, 4], lower: 0, upper: 10), 0.1, accuracy: 1e-12)
        XCTAssertEqual(trailingGap([], lower: 0, upper: 10), 1)
        // an older archive without trailing gaps: nearest half by largest gap (0.28125 is as near 0.25 as 0.3125: all tie)
        let old = (interior + cut).map { PredictiveNullCase(pValue: $0.pValue, largestGap: $0.largestGap, trailingGap: nil) }
        XCTAssertEqual(ModelCalibration.nearestHalf(old, to: PredictiveNullCase(pValue: 0.2, largestGap: 0.28125, trailingGap: 0.28125)).count, 200)
        XCTAssertEqual(ModelCalibration.nearestHalf(old, to: PredictiveNullCase(pValue: 0.2, largestGap: 0.3, trailingGap: 0.3)).count, 100)
    }
}
