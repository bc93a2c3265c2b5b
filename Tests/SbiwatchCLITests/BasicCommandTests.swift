import Foundation
import XCTest
import SbiArchive
import SbiCore
import SbiTasks

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
        for (args, message) in [(["bench", "calibration", "m.sbim", "--cases", "0"], "--cases >= 20 and --draws >= 10 needed"),
                                (["bench", "misspecification", "m.sbim", "--per-kind", "1"], "--per-kind >= 10"),
                                (["calibrate", "m.sbim", "--out", "n.sbim", "--cases", "5"], "--cases must be at least 20"),
                                (["calibrate", "m.sbim", "--out", "n.txt"], "--out must name a .sbim file"),
                                (["train", "--task", "sird", "--out", "m.sbim", "--calibration-cases", "5"], "--calibration-cases must be 0 (skip) or at least 20"),
                                (["bench", "accuracy", "--tasks", "nope"], "unknown task 'nope'"),
                                (["bench", "query", "--sampler-steps", "1"], "--sampler-steps must be at least 2"),
                                (["bench", "throughput", "--threads", "0"], "--threads must be at least 1"),
                                (["bench", "throughput", "--kernels", "sse"], "--kernels must be avx2, avx512 or both, not 'sse'"),
                                (["bench", "calibration", "m.sbim", "--sigma-low", "0"], "--sigma-low must be a positive number"),
                                (["calibrate", "m.sbim", "--out", "n.sbim", "--sigma-low", "inf"], "--sigma-low must be a positive number"),
                                (["bench", "calibration", "m.sbim", "--sigma-high", "0"], "--sigma-high must be a positive number"),
                                (["calibrate", "m.sbim", "--out", "n.sbim", "--sigma-high", "nan"], "--sigma-high must be a positive number")] {
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
        // the small training pass's linear products: forward, input and weight gradients of 4 layers,
        // on chunks of 39 examples x 13 tokens = 507 rows
        let shapes = json["sgemm_at_layer_shapes"] as! [[String: Any]]
        XCTAssertEqual(shapes.count, 12)
        XCTAssert(shapes.contains { $0["m"] as? Int == 507 && $0["k"] as? Int == 50 && $0["n"] as? Int == 120 }, "\(shapes)")
        for g in shapes { XCTAssertEqual(g["fraction_of_peak"] as! Double, (g["gflops"] as! Double) / peak, accuracy: 1e-9) }
        XCTAssertGreaterThan(e["linear_layer_ceiling"] as! Double, 0)
        XCTAssertEqual(e["kernels"] as? String, KernelPath.avx512Available ? "avx512" : "avx2")
        XCTAssertFalse((json["openblas_core"] as! String).isEmpty)
    }

    /// OpenBLAS pinned to its AVX2 kernels by the environment: the report names the kernels, and on an
    /// AVX-512 CPU says that the peak is the slower one and how to measure the default.
    func testBenchNamesOpenBLASKernelsPinnedByTheEnvironment() throws {
        let r = try CLI.run(["bench", "throughput", "--json", "--seconds", "0.05", "--only", "small"],
                            environment: ["OPENBLAS_CORETYPE": "Haswell"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(json["openblas_core"] as? String, "Haswell")
        if KernelPath.avx512Available {
            let note = try XCTUnwrap(json["openblas_note"] as? String)
            XCTAssert(note.contains("OPENBLAS_CORETYPE=Haswell") && note.contains("unset OPENBLAS_CORETYPE"), note)
        } else {
            XCTAssertNil(json["openblas_note"])
        }
    }

    /// --kernels both measures each configuration with the AVX2 and then the AVX-512 kernels (on an
    /// AVX-512 CPU; elsewhere it is refused, naming the missing instructions).
    func testBenchThroughputMeasuresBothKernelPaths() throws {
        let r = try CLI.run(["bench", "throughput", "--json", "--seconds", "0.05", "--only", "small", "--kernels", "both"])
        guard KernelPath.avx512Available else {
            XCTAssertEqual(r.status, 64)
            XCTAssert(r.stderr.contains("this CPU has no AVX-512"), r.stderr)
            return
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let entries = json["entries"] as! [[String: Any]]
        XCTAssertEqual(entries.map { $0["kernels"] as! String }, ["avx2", "avx512"])
        XCTAssertEqual(Set(entries.map { $0["name"] as! String }), ["small_train_b1000_t13"])
        for e in entries { XCTAssertGreaterThan(e["tokens_per_second"] as! Double, 0) }
    }

    /// `bench query` refuses, with status 64 and a hint, a model that is not SIRD and `--method direct`
    /// on a model that answers fewer than beta's 100 points directly (the shipped sird with beta's
    /// trained maximum set to 20 in a copy's manifest).
    func testBenchQueryRefusals() throws {
        let lv = CLI.repository.appendingPathComponent("fixtures/models/lotka-volterra.sbim").path
        let other = try CLI.run(["bench", "query", "--model", lv, "--sampler-steps", "2", "--threads", "1"])
        XCTAssertEqual(other.status, 64, other.stderr)
        XCTAssert(other.stderr.contains("timed on a SIRD model") && other.stderr.contains("prey"), other.stderr)
        XCTAssert(other.stderr.contains("give a SIRD model"), other.stderr)

        let loaded = try ModelArchive.load(CLI.repository.appendingPathComponent("fixtures/models/sird.sbim").path)
        var manifest = loaded.manifest
        let beta = try XCTUnwrap(manifest.spec.variables.firstIndex { $0.name == "beta" })
        manifest.spec.variables[beta].time!.maxPoints = 20
        let trust = loaded.calibration.map { TrustRecord(calibration: $0, reference: loaded.reference) }
        let sparse = NSTemporaryDirectory() + "/sird-beta20-\(getpid()).sbim"
        defer { try? FileManager.default.removeItem(atPath: sparse) }
        try ModelArchive.save(try ModelArchive.encode(loaded.model, manifest: manifest, trust: trust), to: sparse)
        let direct = try CLI.run(["bench", "query", "--model", sparse, "--method", "direct", "--sampler-steps", "2", "--threads", "1"])
        XCTAssertEqual(direct.status, 64, direct.stderr)
        XCTAssert(direct.stderr.contains("answers at most 20 directly"), direct.stderr)
        XCTAssert(direct.stderr.contains("leave out --method direct"), direct.stderr)
    }

    /// `bench query` with the shipped SIRD model at 2 sampler steps: the entry names the model's sampler and the override.
    func testBenchQueryJSON() throws {
        let model = CLI.repository.appendingPathComponent("fixtures/models/sird.sbim").path
        let r = try CLI.run(["bench", "query", "--model", model, "--sampler-steps", "2", "--threads", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let q = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(q["samples"] as? Int, 1000)
        XCTAssertEqual(q["sampler_steps"] as? Int, 2)
        XCTAssertEqual(q["sampler"] as? String, "dpmpp2m-sde", "the shipped model's sampler")
        XCTAssertEqual(q["network_evaluations"] as? Int, 2)
        XCTAssertGreaterThan(q["seconds"] as! Double, 0)
        // beta's 100 points as a file's query answers them: directly by a model trained with up to 100
        // times per variable (3 + 100 + 60 tokens), else at its 20 support times (3 + 20 + 60)
        let card = try CLI.run(["inspect", model]).stdout
        let dense = card.contains("beta: parameter, a function of time on [0, 50] days, queried at up to 100 times directly")
        XCTAssert(dense || card.contains("queried at up to 20 times directly"), card)
        XCTAssertEqual(q["method"] as? String, dense ? "direct" : "interpolated")
        XCTAssertEqual(q["support_times"] as? Int, dense ? 100 : 20)
        XCTAssertEqual(q["tokens"] as? Int, dense ? 163 : 83)
        let i = try CLI.run(["bench", "query", "--model", model, "--sampler-steps", "2", "--threads", "1", "--method", "interpolated", "--json"])
        XCTAssertEqual(i.status, 0, i.stderr)
        let iq = try JSONSerialization.jsonObject(with: Data(i.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(iq["method"] as? String, "interpolated")
        XCTAssertEqual(iq["support_times"] as? Int, 20)
        XCTAssertEqual(iq["tokens"] as? Int, 83)
        // a noise-level sampler: 2 levels of DPM-Solver++(2M), 2 evaluations
        let d = try CLI.run(["bench", "query", "--model", model, "--sampler", "dpmpp2m", "--sampler-steps", "2", "--threads", "1", "--json"])
        XCTAssertEqual(d.status, 0, d.stderr)
        let dq = try JSONSerialization.jsonObject(with: Data(d.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(dq["sampler"] as? String, "dpmpp2m")
        XCTAssertEqual(dq["network_evaluations"] as? Int, 2)
    }

    /// `bench query --files 2`: two files' queries timed one after another and as one batch; the
    /// ratio is the two times' quotient, and more than 64 files is refused.
    func testBenchQueryFilesTimesABatch() throws {
        let model = CLI.repository.appendingPathComponent("fixtures/models/sird.sbim").path
        let r = try CLI.run(["bench", "query", "--model", model, "--files", "2", "--sampler-steps", "2", "--threads", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let b = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(b["files"] as? Int, 2)
        XCTAssertEqual(b["samples_per_file"] as? Int, 1000)
        XCTAssertEqual(b["tokens"] as? Int, 83)
        let separate = try XCTUnwrap(b["separate_seconds"] as? Double), batched = try XCTUnwrap(b["batched_seconds"] as? Double)
        XCTAssertGreaterThan(separate, 0)
        XCTAssertGreaterThan(batched, 0)
        XCTAssertEqual(try XCTUnwrap(b["speedup"] as? Double), separate / batched, accuracy: 1e-9)
        let many = try CLI.run(["bench", "query", "--files", "65"])
        XCTAssertEqual(many.status, 64, many.stderr)
        XCTAssert(many.stderr.contains("--files 65"), many.stderr)
    }

    /// `bench dense-grid` on the shipped SIRD model (trained with up to 20 times per variable): beta on
    /// its 100-point grid is interpolated between 20 support times, the 14-day forecasts of the three
    /// series are answered directly; coverages are fractions of the 10 cases; the prior's smoothness
    /// is that of the held-out simulations' own beta paths (recomputed here from the same seed).
    func testBenchDenseGridJSON() throws {
        let model = CLI.repository.appendingPathComponent("fixtures/models/sird.sbim").path
        let r = try CLI.run(["bench", "dense-grid", model, "--cases", "10", "--draws", "20", "--sampler-steps", "2",
                             "--threads", "1", "--seed", "7", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let d = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(d["cases"] as? Int, 10)
        XCTAssertEqual(d["history_end"] as? Double, 36)
        let coverage = d["coverage"] as! [[String: Any]]
        XCTAssertEqual(coverage.map { $0["variable"] as! String }, ["beta", "dead", "infected", "recovered"])
        for c in coverage {
            let name = c["variable"] as! String, times = c["times"] as! [Double]
            let grid: [Double] = name == "beta" ? (0..<100).map { 50 * Double($0) / 99 } : (37...50).map { Double($0) }
            XCTAssertEqual(times.count, grid.count, name)
            for (a, b) in zip(times, grid) { XCTAssertEqual(a, b, accuracy: 1e-9, name) }
            let answer = c["answered_by"] as! [String: Any]
            XCTAssertEqual(answer["method"] as? String, name == "beta" ? "interpolated" : "direct", name)
            for key in ["coverage_50", "coverage_90"] {
                let values = c[key] as! [Double]
                XCTAssertEqual(values.count, times.count)
                let tenths = values.map { (v: Double) -> Double in abs(v * 10 - (v * 10).rounded()) }
                XCTAssert(tenths.allSatisfy { $0 < 1e-9 } && values.allSatisfy { $0 >= 0 && $0 <= 1 }, "\(name) \(key): \(values)")
            }
            XCTAssertEqual(c["worst_deviation_90"] as! Double, (c["coverage_90"] as! [Double]).map { abs($0 - 0.9) }.max()!, accuracy: 1e-12)
        }
        let smooth = (d["smoothness"] as! [[String: Any]]).first!
        XCTAssertEqual(smooth["variable"] as? String, "beta")
        let rows = SIRDTask().simulate(count: 10, key: RandomKey(seed: 7).split(1))
        // mean |second difference| of a path; beta's 100 grid values sit at 3..<103 of a simulation row
        func secondDifference(_ path: [Double]) -> Double {
            var sum = 0.0
            for i in 1..<(path.count - 1) { sum += abs(path[i + 1] - 2 * path[i] + path[i - 1]) }
            return sum / Double(path.count - 2)
        }
        let prior = rows.map { secondDifference(Array($0[3..<103])) }.reduce(0, +) / 10
        XCTAssertEqual(smooth["prior"] as! Double, prior, accuracy: 1e-12)
        // the pointwise median of 20 fresh prior paths (as many as the draws), from the same seed
        let fresh = SIRDTask().simulate(count: 20, key: RandomKey(seed: 7).split(5))
        let median = (3..<103).map { i -> Double in let s = fresh.map { $0[i] }.sorted(); return 0.5 * (s[9] + s[10]) }
        let medianRoughness = secondDifference(median)
        XCTAssertEqual(smooth["prior_median"] as! Double, medianRoughness, accuracy: 1e-12)
        XCTAssertGreaterThan(medianRoughness, prior, "a median of 20 paths has kinks where single paths have none")
        XCTAssertGreaterThan(smooth["posterior_median"] as! Double, 0)
    }

    /// `bench dense-grid --pool`: two runs of the shipped SIRD model on different seeds add up to one
    /// report over their 20 cases (band hits summed, standard errors at 20 cases, the seeds and the
    /// model recorded); a run pooled with itself, a run of another design, a file that is not a run
    /// and a run whose coverages do not match its times are refused, naming the files.
    func testBenchDenseGridPoolsRunsOfDifferentSeeds() throws {
        let model = CLI.repository.appendingPathComponent("fixtures/models/sird.sbim").path
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sbiwatch-pool-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        func run(seed: Int, draws: Int = 20) throws -> (path: String, json: [String: Any]) {
            let r = try CLI.run(["bench", "dense-grid", model, "--cases", "10", "--draws", "\(draws)", "--sampler-steps", "2",
                                 "--threads", "1", "--seed", "\(seed)", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let path = folder.appendingPathComponent("run-\(seed)-\(draws).json").path
            try Data(r.stdout.utf8).write(to: URL(fileURLWithPath: path))
            return (path, try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any])
        }
        let a = try run(seed: 7), b = try run(seed: 8)
        XCTAssertEqual(a.json["seed"] as? Int, 7)
        XCTAssertEqual((a.json["model_sha256"] as? String)?.count, 64)
        let pooled = try CLI.run(["bench", "dense-grid", "--pool", a.path, b.path, "--json"])
        XCTAssertEqual(pooled.status, 0, pooled.stderr)
        let p = try JSONSerialization.jsonObject(with: Data(pooled.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(p["cases"] as? Int, 20)
        XCTAssertEqual(p["seeds"] as? [Int], [7, 8])
        XCTAssertEqual(p["runs"] as? Int, 2)
        XCTAssertEqual(p["model_sha256"] as? String, a.json["model_sha256"] as? String)
        let (ca, cb, cp) = (a.json["coverage"] as! [[String: Any]], b.json["coverage"] as! [[String: Any]], p["coverage"] as! [[String: Any]])
        XCTAssertEqual(cp.count, 4)
        for k in 0..<4 {
            for key in ["coverage_50", "coverage_90"] {
                let x = ca[k][key] as! [Double], y = cb[k][key] as! [Double], z = cp[k][key] as! [Double]
                for i in x.indices { XCTAssertEqual(z[i], (x[i] + y[i]) / 2, accuracy: 1e-12, "\(key) \(i)") }
            }
            XCTAssertEqual(cp[k]["standard_error_50"] as! Double, (0.25 / 20.0).squareRoot(), accuracy: 1e-12)
            XCTAssertEqual(cp[k]["worst_deviation_50"] as! Double, (cp[k]["coverage_50"] as! [Double]).map { abs($0 - 0.5) }.max()!, accuracy: 1e-12)
        }
        let text = try CLI.run(["bench", "dense-grid", "--pool", a.path, b.path])
        XCTAssert(text.stdout.contains("2 pooled runs (sird), 20 cases") && text.stdout.contains("seeds 7, 8"), text.stdout)
        XCTAssert(text.stdout.contains("times more than 0.05 off"), text.stdout)

        let twice = try CLI.run(["bench", "dense-grid", "--pool", a.path, b.path, a.path])
        XCTAssertEqual(twice.status, 64, twice.stderr)
        XCTAssert(twice.stderr.contains("both hold the cases of seed 7"), twice.stderr)
        let other = try run(seed: 9, draws: 21)
        let mixed = try CLI.run(["bench", "dense-grid", "--pool", a.path, other.path])
        XCTAssertEqual(mixed.status, 64, mixed.stderr)
        XCTAssert(mixed.stderr.contains("\(other.path) and \(a.path) differ in draws (21 against 20)"), mixed.stderr)
        let bogus = folder.appendingPathComponent("bogus.json").path
        try Data("{}".utf8).write(to: URL(fileURLWithPath: bogus))
        let bad = try CLI.run(["bench", "dense-grid", "--pool", bogus])
        XCTAssertEqual(bad.status, 65, bad.stderr)
        XCTAssert(bad.stderr.contains("\(bogus) is not the --json output of bench dense-grid"), bad.stderr)
        var cut = a.json
        var first = (cut["coverage"] as! [[String: Any]])
        first[0]["coverage_50"] = Array((first[0]["coverage_50"] as! [Double]).dropLast())
        cut["coverage"] = first
        let cutPath = folder.appendingPathComponent("cut.json").path
        try JSONSerialization.data(withJSONObject: cut).write(to: URL(fileURLWithPath: cutPath))
        let short = try CLI.run(["bench", "dense-grid", "--pool", cutPath, b.path])
        XCTAssertEqual(short.status, 65, short.stderr)
        XCTAssert(short.stderr.contains("\(cutPath) is not a whole bench dense-grid run"), short.stderr)
        XCTAssertEqual(try CLI.run(["bench", "dense-grid"]).status, 64)
    }

    /// `bench training` at two densities of sird: more tokens per example, fewer steps per second.
    func testBenchTrainingJSON() throws {
        let r = try CLI.run(["bench", "training", "--task", "sird", "--max-points", "5", "60", "--budget", "40", "--steps", "2",
                             "--batch-size", "8", "--config", "small", "--threads", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let entries = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [[String: Any]]
        XCTAssertEqual(entries.map { $0["max_points"] as? Int }, [5, 60])
        XCTAssertEqual(entries.map { $0["max_tokens"] as? Int }, [3 + 4 * 5, 3 + 4 * 60])
        let mean = entries.map { $0["mean_tokens"] as! Double }
        // E[k] for k log-uniform on 1...5: sum_k k log((k + 1) / k) / log 6
        var expected = 0.0
        for k in 1...5 { expected += Double(k) * log(Double(k + 1) / Double(k)) }
        expected /= log(6)
        XCTAssertEqual(mean[0], 3 + 4 * 0.9 * expected, accuracy: 1e-9)
        XCTAssertGreaterThan(mean[1], mean[0])
        XCTAssert(entries.allSatisfy { ($0["steps_per_second"] as! Double) > 0 })
        // beyond the grid is refused, as `train --max-points` refuses it (one shared check)
        for args in [["bench", "training", "--task", "sird", "--max-points", "101", "--budget", "40", "--steps", "1", "--config", "small"],
                     ["train", "--task", "sird", "--budget", "40", "--max-points", "101", "--out", NSTemporaryDirectory() + "/never.sbim"]] {
            let bad = try CLI.run(args)
            XCTAssertEqual(bad.status, 64, "\(args): \(bad.stderr)")
            XCTAssert(bad.stderr.contains("--max-points 101 is more than beta's grid of 100 times"), bad.stderr)
        }
    }

    /// `bench calibration` on a few held-out simulations of the shipped Lotka-Volterra model: one
    /// entry per parameter with SBC, coverage at four levels (fractions of the cases), z-scores and
    /// contraction, and the predictive null of both series.
    func testBenchCalibrationJSON() throws {
        let model = CLI.repository.appendingPathComponent("fixtures/models/lotka-volterra.sbim").path
        let r = try CLI.run(["bench", "calibration", model, "--cases", "20", "--draws", "10", "--sampler-steps", "3", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let c = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(c["status"] as? String, "measured")
        XCTAssertEqual(c["cases"] as? Int, 20)
        XCTAssertEqual(c["draws"] as? Int, 10)
        XCTAssertEqual(c["sampler_steps"] as? Int, 3)
        let entries = c["parameters"] as! [[String: Any]]
        XCTAssertEqual(entries.map { $0["name"] as! String }, ["alpha", "beta", "gamma", "delta"])
        for e in entries {
            XCTAssertEqual((e["sbc"] as! [String: Any])["cases"] as? Int, 20)
            XCTAssertNotNil(e["mean_z_score"] as? Double)
            XCTAssertNotNil(e["contraction"] as? Double)
            let coverage = e["coverage"] as! [String: Double]
            XCTAssertEqual(Set(coverage.keys), ["50", "80", "90", "95"])
            for (level, v) in coverage {
                XCTAssertEqual(v * 20, (v * 20).rounded(), accuracy: 1e-9, "coverage \(level) = \(v) is not a fraction of 20 cases")
            }
        }
        let null = c["predictive_null"] as! [String: [Double]]
        XCTAssertEqual(null["prey"]?.count, 20)
        XCTAssertEqual(null["predator"]?.count, 20)
    }

    /// `bench misspecification` on the shipped gaussian-linear model: the rows asked for, with the
    /// cases measured; data in the wrong units (x100) flagged in every case; an unknown kind refused.
    func testBenchMisspecificationJSON() throws {
        let model = CLI.repository.appendingPathComponent("fixtures/models/gaussian-linear.sbim").path
        let r = try CLI.run(["bench", "misspecification", model, "--well-specified", "20", "--per-kind", "10", "--samples", "20",
                             "--kinds", "well_specified", "x_scaled_100", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [[String: Any]]
        XCTAssertEqual(rows.map { $0["kind"] as! String }, ["well_specified", "x_scaled_100"])
        XCTAssertEqual(rows.map { $0["cases"] as! Int }, [20, 10])
        let scaled = rows[1]
        XCTAssertEqual(scaled["any_check"] as? Double, 1)
        XCTAssertEqual((scaled["flagged"] as! [String: Double])["out_of_distribution"], 1)
        XCTAssertEqual(scaled["data_verdict_not_ok"] as? Double, 1)
        XCTAssertEqual(scaled["sidak_not_ok"] as? Double, 1)
        let unknown = try CLI.run(["bench", "misspecification", model, "--kinds", "nope"])
        XCTAssertEqual(unknown.status, 64, unknown.stderr)
        XCTAssert(unknown.stderr.contains("unknown misspecification kind 'nope'"), unknown.stderr)
    }
}
