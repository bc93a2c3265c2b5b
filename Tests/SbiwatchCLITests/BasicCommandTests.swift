import Foundation
import XCTest

final class BasicCommandTests: XCTestCase {
    func testVersionNamesTheLinkedLibraries() throws {
        let r = try CLI.run(["--version"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssert(r.stdout.hasPrefix("sbiwatch 0.1.0"), r.stdout)
        XCTAssert(r.stdout.contains("netCDF 4."), r.stdout)
        XCTAssert(r.stdout.contains("libarchive 3."), r.stdout)
        XCTAssert(r.stdout.contains("OpenBLAS"), r.stdout)
    }

    func testHelpMatchesGolden() throws {
        let r = try CLI.run(["--help"])
        XCTAssertEqual(r.status, 0, r.stderr)
        try CLI.assertGolden(r.stdout, "help.txt")
        let bench = try CLI.run(["help", "bench"])
        XCTAssertEqual(bench.status, 0, bench.stderr)
        try CLI.assertGolden(bench.stdout, "help-bench.txt")
        for sub in ["throughput", "query", "accuracy", "calibration", "misspecification"] {
            let r = try CLI.run(["help", "bench", sub])
            XCTAssertEqual(r.status, 0, r.stderr)
            try CLI.assertGolden(r.stdout, "help-bench-\(sub).txt")
        }
        let calibrate = try CLI.run(["help", "calibrate"])
        XCTAssertEqual(calibrate.status, 0, calibrate.stderr)
        try CLI.assertGolden(calibrate.stdout, "help-calibrate.txt")
    }

    func testBadArgumentsExitWithUsageStatus() throws {
        let r = try CLI.run(["bench", "throughput", "--seconds", "0"])
        XCTAssertEqual(r.status, 64)
        XCTAssert(r.stderr.contains("--seconds must be positive"), r.stderr)
        for (args, message) in [(["bench", "calibration", "m.sbim", "--held-out", "0"], "--held-out >= 1"),
                                (["bench", "accuracy", "--tasks", "nope"], "unknown task 'nope'"),
                                (["bench", "query", "--sampler-steps", "1"], "--sampler-steps must be at least 2"),
                                (["bench", "throughput", "--threads", "0"], "--threads must be at least 1")] {
            let bad = try CLI.run(args)
            XCTAssertEqual(bad.status, 64, "\(args)")
            XCTAssert(bad.stderr.contains(message), "\(args): \(bad.stderr)")
        }
        let unknown = try CLI.run(["frobnicate"])
        XCTAssertEqual(unknown.status, 64)
    }

    /// The JSON report has every figure the issue asks for (values are measured, not asserted).
    func testBenchJSONShape() throws {
        let r = try CLI.run(["bench", "throughput", "--json", "--seconds", "0.05", "--only", "small"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertGreaterThan(json["sgemm_gflops_one_core"] as! Double, 0)
        let entries = json["entries"] as! [[String: Any]]
        XCTAssertEqual(entries.map { $0["name"] as! String }, ["small_train_b1000_t13"])
        let e = entries[0]
        for key in ["tokens_per_second", "gflops", "fraction_of_sgemm_peak", "seconds_per_pass"] {
            XCTAssertGreaterThan(e[key] as! Double, 0, key)
        }
        XCTAssertEqual(e["batch"] as? Int, 1000)
        XCTAssertEqual(e["tokens"] as? Int, 13)
        XCTAssertEqual(e["backward"] as? Bool, true)
        let frac = e["fraction_of_sgemm_peak"] as! Double, gflops = e["gflops"] as! Double
        let peak = json["sgemm_gflops_one_core"] as! Double, threads = Double(e["threads"] as! Int)
        XCTAssertEqual(frac, gflops / (peak * threads), accuracy: 1e-9)
    }

    /// `bench query` with the shipped SIRD model at 2 sampler steps: the entry names the model's sampler and the override.
    func testBenchQueryJSON() throws {
        let model = CLI.repository.appendingPathComponent("fixtures/models/sird.sbim").path
        let r = try CLI.run(["bench", "query", "--model", model, "--sampler-steps", "2", "--threads", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let q = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(q["samples"] as? Int, 1000)
        XCTAssertEqual(q["sampler_steps"] as? Int, 2)
        XCTAssertEqual(q["sampler"] as? String, "sde")
        XCTAssertGreaterThan(q["seconds"] as! Double, 0)
    }

    /// `bench calibration` on a few held-out simulations of the shipped Lotka-Volterra model: one
    /// coverage entry per parameter, each a fraction of the cases.
    func testBenchCalibrationJSON() throws {
        let model = CLI.repository.appendingPathComponent("fixtures/models/lotka-volterra.sbim").path
        let r = try CLI.run(["bench", "calibration", model, "--held-out", "4", "--samples", "20", "--sampler-steps", "3", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let c = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(c["task"] as? String, "lotka_volterra_irregular")
        XCTAssertEqual(c["simulations"] as? Int, 4)
        XCTAssertEqual(c["sampler_steps"] as? Int, 3)
        let entries = c["entries"] as! [[String: Any]]
        XCTAssertEqual(Set(entries.map { $0["name"] as! String }), ["alpha", "beta", "gamma", "delta"])
        for e in entries {
            XCTAssertEqual(e["cases"] as? Int, 4)
            for key in ["coverage_50", "coverage_90"] {
                let v = e[key] as! Double
                XCTAssert([0, 0.25, 0.5, 0.75, 1].contains(v), "\(key) = \(v) is not a fraction of 4 cases")
            }
        }
    }
}
