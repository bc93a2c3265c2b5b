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
    }

    func testBadArgumentsExitWithUsageStatus() throws {
        let r = try CLI.run(["bench", "--seconds", "0"])
        XCTAssertEqual(r.status, 64)
        XCTAssert(r.stderr.contains("--seconds must be positive"), r.stderr)
        let unknown = try CLI.run(["frobnicate"])
        XCTAssertEqual(unknown.status, 64)
    }

    /// The JSON report has every figure the issue asks for (values are measured, not asserted).
    func testBenchJSONShape() throws {
        let r = try CLI.run(["bench", "--json", "--seconds", "0.05", "--only", "small"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let top = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertNil(top["query"], "--only small must skip the SIRD query timing")
        let json = top["throughput"] as! [String: Any]
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
}
