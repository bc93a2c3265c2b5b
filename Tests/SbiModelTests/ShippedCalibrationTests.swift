import Foundation
import XCTest
import SbiTestSupport
@testable import SbiArchive
@testable import SbiChecks
@testable import SbiCore

/// Every shipped model (fixtures/models/PINS) carries its calibration and reference simulations,
/// measured as `sbiwatch calibrate` records in its provenance. All four are calibrated at the family
/// level (sird since its recalibration under DPM-Solver++(2M) SDE with 20 steps; under its former
/// sampler, 40 Euler-Maruyama steps, beta(t) failed at three of its four calibrated times).
final class ShippedCalibrationTests: XCTestCase {
    func testShippedModelsCarryCalibration() throws {
        let folder = RepositoryPaths.root.appendingPathComponent("fixtures/models")
        let pins = try String(contentsOf: folder.appendingPathComponent("PINS"), encoding: .utf8)
        let lines = pins.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }
        XCTAssertEqual(lines.count, 4)
        let knownFailures = ["gaussian-linear": [String](), "lotka-volterra": [], "sird": [], "hodgkin-huxley": []]
        for line in lines {
            let m = try ModelArchive.load(folder.appendingPathComponent(String(line)).path)
            let name = m.path
            let c = try XCTUnwrap(m.calibration, name)
            XCTAssertTrue(c.measured, name)
            XCTAssertGreaterThanOrEqual(c.cases, 100, name)
            XCTAssertEqual(c.draws, 100, name)
            XCTAssertEqual(c.sampler, m.manifest.sampler.method.rawValue, name)
            XCTAssertEqual(c.samplerSteps, m.manifest.sampler.steps, name)
            // measured by `sbiwatch calibrate`, or by the pass at the end of `sbiwatch train` (hodgkin-huxley)
            let command = m.manifest.provenance.calibrationCommand ?? m.manifest.provenance.command
            XCTAssert(command.hasPrefix("sbiwatch calibrate ") || command.hasPrefix("sbiwatch train "), name)
            XCTAssertEqual(m.reference?.rows.count, CalibrationSize.references, name)
            let scalars = m.manifest.spec.variables.filter { $0.kind == .parameter && $0.time == nil }.reduce(0) { $0 + $1.size }
            let functions = m.manifest.spec.variables.filter { $0.kind == .parameter && $0.time != nil }.count
            XCTAssertEqual(c.parameters.count, scalars + 4 * functions, name)
            let stem = URL(fileURLWithPath: name).deletingPathExtension().lastPathComponent
            let failed = c.failed().map(\.name)
            XCTAssertEqual(failed, knownFailures[stem], "\(name): calibration failures at the family level")
            for e in c.parameters {
                XCTAssertEqual(Set(e.coverage.keys), ["50", "80", "90", "95"], "\(name) \(e.name)")
                XCTAssertEqual(e.sbc.cases, c.cases)
                guard !failed.contains(e.name) else { continue }
                // a calibrated scalar covers within 4 binomial standard errors at every level
                for level in ModelCalibration.levels {
                    let nominal = Double(level) / 100, se = e.coverageStandardError["\(level)"]!
                    XCTAssertEqual(e.coverage["\(level)"]!, nominal, accuracy: 4 * se, "\(name) \(e.name) at \(level)%")
                }
            }
            for v in m.manifest.spec.variables where v.kind == .data {
                XCTAssertEqual(c.predictiveNull[v.name]?.count, c.cases, "\(name): predictive null of \(v.name)")
                if let cases = c.predictiveNullCases?[v.name] {
                    XCTAssertEqual(cases.map(\.pValue).sorted(), c.predictiveNull[v.name], "\(name): null cases of \(v.name)")
                }
            }
            // the worst deviation is one of the coverages, and no coverage deviates more
            let worst = try XCTUnwrap(c.worstCoverageDeviation, name)
            let entry = try XCTUnwrap(c.parameters.first { $0.name == worst.name }, name)
            XCTAssertEqual(abs(entry.coverage["\(worst.level)"]! - Double(worst.level) / 100), worst.deviation, accuracy: 1e-12)
            for e in c.parameters { for (level, v) in e.coverage {
                XCTAssertLessThanOrEqual(abs(v - Double(level)! / 100), worst.deviation + 1e-12, "\(name) \(e.name)")
            } }
        }
    }
}
