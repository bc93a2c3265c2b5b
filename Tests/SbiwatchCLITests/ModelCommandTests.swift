import Foundation
import XCTest
import SbiArchive
import SbiModel
import SbiTestSupport

/// One member of a tar.gz, read with tar(1).
func tarMember(_ archive: String, _ member: String) throws -> Data {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
    p.arguments = ["-xzOf", archive, member]
    let pipe = Pipe(); p.standardOutput = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    XCTAssertEqual(p.terminationStatus, 0)
    return data
}

/// train -> inspect -> sample through the real binary, on a tiny budget (no accuracy asserted here).
final class ModelCommandTests: TemporaryDirectoryTestCase {



    /// SIGTERM saves the run's state and exits 75; the same command continues and ends with the
    /// weights of an uninterrupted run; a different run refuses the checkpoint.
    func testInterruptedTrainingResumes() throws {
        let args = ["train", "--task", "gaussian_linear", "--budget", "100", "--steps", "400", "--batch-size", "16",
                    "--seed", "4", "--threads", "1", "--calibration-cases", "0"]
        let model = path("gl.sbim"), checkpoint = path("gl.checkpoint")
        let clash = try CLI.run(args + ["--out", model, "--checkpoint", model])
        XCTAssertEqual(clash.status, 64, clash.stderr)
        XCTAssert(clash.stderr.contains("is the same file as --out"), clash.stderr)
        let nowhere = try CLI.run(args + ["--out", model, "--checkpoint", path("missing/gl.checkpoint")])
        XCTAssertEqual(nowhere.status, 73, nowhere.stderr)
        XCTAssert(nowhere.stderr.contains("cannot write the training checkpoint into"), nowhere.stderr)
        let first = try Background(args + ["--checkpoint-every", "0.3", "--out", model])
        let end = Date().addingTimeInterval(120)
        while !first.stderr.contains("saved step") && Date() < end { usleep(50_000) }
        first.terminate()
        XCTAssertEqual(first.wait(), 75, first.stderr)
        XCTAssert(first.stderr.contains("state is saved in \(checkpoint)"), first.stderr)
        XCTAssert(first.stderr.contains("run the same command again to continue from step"), first.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: model))
        XCTAssert(FileManager.default.fileExists(atPath: checkpoint))

        let other = try CLI.run(["train", "--task", "gaussian_linear", "--budget", "100", "--steps", "400", "--batch-size", "16",
                                 "--seed", "5", "--threads", "1", "--calibration-cases", "0", "--out", model])
        XCTAssertEqual(other.status, 64, other.stderr)
        XCTAssert(other.stderr.contains("belongs to another training run"), other.stderr)

        let resumed = try CLI.run(args + ["--out", model])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssert(resumed.stderr.contains("resuming from \(checkpoint) at step"), resumed.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: checkpoint), "the checkpoint outlived the finished model")

        let straight = try CLI.run(args + ["--out", path("straight.sbim")])
        XCTAssertEqual(straight.status, 0, straight.stderr)
        XCTAssertEqual(try tarMember(model, "weights.safetensors"), try tarMember(path("straight.sbim"), "weights.safetensors"),
                       "the resumed run must end with the uninterrupted run's weights")
    }

    /// A model trained for 50 steps is miscalibrated, and its calibration pass (stored in the
    /// archive at training time) says so; a report of it leads with a verdict that is not ok.
    func testUndertrainedModelFailsCalibration() throws {
        let model = path("bad.sbim")
        let train = try CLI.run(["train", "--task", "gaussian_linear", "--budget", "200", "--steps", "50", "--batch-size", "32",
                                 "--sampler-steps", "10", "--calibration-cases", "100", "--out", model])
        XCTAssertEqual(train.status, 0, train.stderr)
        let calibration = try JSONSerialization.jsonObject(with: try tarMember(model, "calibration.json")) as! [String: Any]
        XCTAssertEqual(calibration["status"] as? String, "measured")
        XCTAssertEqual(calibration["cases"] as? Int, 100)
        let parameters = calibration["parameters"] as! [[String: Any]]
        XCTAssertEqual(parameters.count, 10)
        let failed = parameters.filter { ($0["sbc"] as! [String: Any])["passed"] as? Bool == false }
        XCTAssertFalse(failed.isEmpty, "no parameter of a 50-step model failed SBC: \(train.stderr)")
        let inspect = try CLI.run(["inspect", model])
        XCTAssert(inspect.stdout.contains("| FAIL |"), inspect.stdout)
        let card = String(decoding: try tarMember(model, "README.md"), as: UTF8.self)
        XCTAssert(card.contains("## Calibration") && card.contains("| FAIL |") && card.contains("## Intended use"), card)

        let file = path("obs.nc"), out = path("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        XCTAssertEqual(try CLI.run(["simulate", "--task", "gaussian_linear", "--model-name", "bad", "--seed", "2", "--out", file]).status, 0)
        let r = try CLI.run(["process", file, "--model", model, "--outbox", out, "--samples", "200"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/obs.report.json"))) as! [String: Any]
        let diagnostics = report["diagnostics"] as! [String: Any]
        XCTAssertNotEqual(diagnostics["verdict"] as? String, "ok")
        XCTAssert((diagnostics["reasons"] as! [String]).contains { $0.contains("calibration failed for") }, "\(diagnostics)")
        let checks = diagnostics["checks"] as! [[String: Any]]
        XCTAssertEqual(Set(checks.map { $0["name"] as! String }), ["out_of_distribution", "posterior_predictive:x"])
    }

    /// `calibrate --sampler --sampler-steps --sigma-low` stores a new default sampler and measures the
    /// calibration under it (the card says which, with its network evaluations and lowest noise level),
    /// and `--sigma-high` its first rho-spaced level (refused for edm; another method drops a stored one);
    /// train refuses a noise-level sampler without its steps.
    func testCalibrateUnderANewDefaultSampler() throws {
        let model = path("gl.sbim"), fast = path("gl-fast.sbim")
        let train = try CLI.run(["train", "--task", "gaussian_linear", "--budget", "200", "--steps", "20", "--batch-size", "32",
                                 "--calibration-cases", "0", "--out", model])
        XCTAssertEqual(train.status, 0, train.stderr)
        let r = try CLI.run(["calibrate", model, "--sampler", "dpmpp2m", "--sampler-steps", "4", "--sigma-low", "0.05",
                             "--cases", "20", "--out", fast])
        XCTAssertEqual(r.status, 0, r.stderr)
        let manifest = try JSONSerialization.jsonObject(with: try tarMember(fast, "manifest.json")) as! [String: Any]
        let sampler = manifest["sampler"] as! [String: Any]
        XCTAssertEqual(sampler["method"] as? String, "dpmpp2m")
        XCTAssertEqual(sampler["steps"] as? Int, 4)
        XCTAssertEqual(sampler["sigma_low"] as? Double, 0.05)
        let calibration = try JSONSerialization.jsonObject(with: try tarMember(fast, "calibration.json")) as! [String: Any]
        XCTAssertEqual(calibration["sampler"] as? String, "dpmpp2m")
        XCTAssertEqual(calibration["sampler_steps"] as? Int, 4)
        XCTAssertEqual(calibration["sampler_sigma_low"] as? Double, 0.05)
        let card = String(decoding: try tarMember(fast, "README.md"), as: UTF8.self)
        XCTAssert(card.contains("dpmpp2m sampler with 4 steps (4 network evaluations per sample), noise levels down to 0.05"), card)
        XCTAssert(card.contains("Default sampler: dpmpp2m, 4 steps, noise levels down to 0.05."), card)
        XCTAssert(card.contains("--sampler dpmpp2m --sampler-steps 4 --sigma-low 0.05 --out gl-fast.sbim"), card)
        // --sigma-high: one step from 15 to it, then rho-spaced; stored, calibrated under, carded, inspected
        let high = path("gl-high.sbim")
        let h = try CLI.run(["calibrate", fast, "--sampler", "dpmpp2m-sde", "--sampler-steps", "6", "--sigma-high", "2.5",
                             "--cases", "20", "--out", high])
        XCTAssertEqual(h.status, 0, h.stderr)
        let highSampler = (try JSONSerialization.jsonObject(with: try tarMember(high, "manifest.json")) as! [String: Any])["sampler"] as! [String: Any]
        XCTAssertEqual(highSampler["sigma_high"] as? Double, 2.5)
        XCTAssertEqual(highSampler["sigma_low"] as? Double, 0.05, "the model's lowest level is kept")
        let highCalibration = try JSONSerialization.jsonObject(with: try tarMember(high, "calibration.json")) as! [String: Any]
        XCTAssertEqual(highCalibration["sampler_sigma_high"] as? Double, 2.5)
        let highCard = String(decoding: try tarMember(high, "README.md"), as: UTF8.self)
        XCTAssert(highCard.contains("Default sampler: dpmpp2m-sde, 6 steps, noise levels from 15 in one step to 2.5, then down to 0.05."), highCard)
        XCTAssert(highCard.contains("--sampler dpmpp2m-sde --sampler-steps 6 --sigma-high 2.5 --out gl-high.sbim"), highCard)
        XCTAssert(try CLI.run(["inspect", high]).stdout.contains("sampler:   dpmpp2m-sde, 6 steps, levels from 2.5"))
        XCTAssert(highCard.contains("dpmpp2m-sde sampler with 6 steps (6 network evaluations per sample), noise levels from 2.5 down to 0.05"), highCard)
        let heun = try CLI.run(["calibrate", high, "--sampler", "edm", "--sampler-steps", "4", "--sigma-high", "2.5", "--cases", "20",
                                "--out", path("gl-heun.sbim")])
        XCTAssertEqual(heun.status, 64, heun.stderr)
        XCTAssert(heun.stderr.contains("sigma_high is for the DPM-Solver++ samplers"), heun.stderr)
        // another method drops the stored level instead of failing on it
        let plain = try CLI.run(["bench", "calibration", high, "--sampler", "sde", "--sampler-steps", "5", "--cases", "20", "--json"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        let refused = try CLI.run(["train", "--task", "gaussian_linear", "--sampler", "edm", "--out", path("x.sbim")])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssert(refused.stderr.contains("--sampler edm needs --sampler-steps"), refused.stderr)
    }

    /// --mask directed: the mask recomputed per example's condition mask in training (weights
    /// bit-identical on 1 and 2 threads) and per query in sampling; the archive records it.
    func testDirectedMaskTrainsAndSamples() throws {
        let one = path("tm1.sbim"), two = path("tm2.sbim")
        for (out, threads) in [(one, "1"), (two, "2")] {
            let r = try CLI.run(["train", "--task", "two_moons", "--budget", "200", "--steps", "20", "--batch-size", "32", "--mask", "directed",
                                 "--threads", threads, "--calibration-cases", "0", "--out", out])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        XCTAssertEqual(try tarMember(one, "weights.safetensors"), try tarMember(two, "weights.safetensors"))
        let manifest = String(decoding: try tarMember(one, "manifest.json"), as: UTF8.self)
        XCTAssert(manifest.contains("\"directed\""), manifest)
        let csv = path("post.csv")
        for observe in [["--observe", "x=0.1,-0.05"], ["--observe", "theta=0.2,0.1"]] {
            let r = try CLI.run(["sample", "--model", one] + observe + ["--samples", "20", "--steps", "5", "--out", csv])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").count, 21)
        }
    }

    func testTrainInspectSample() throws {
        let model = dir.appendingPathComponent("gl.sbim").path
        let train = try CLI.run(["train", "--task", "gaussian_linear", "--budget", "200", "--steps", "20",
                                 "--batch-size", "32", "--seed", "3", "--calibration-cases", "0", "--out", model])
        XCTAssertEqual(train.status, 0, train.stderr)
        XCTAssert(train.stderr.contains("step 20/20"), "progress line missing: \(train.stderr)")
        let pinned = train.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssert(pinned.hasPrefix(model + "@sha256:"), pinned)

        // same command, same seed: the same archive, bit for bit
        let again = dir.appendingPathComponent("again").path
        try FileManager.default.createDirectory(atPath: again, withIntermediateDirectories: true)
        let train2 = try CLI.run(["train", "--task", "gaussian_linear", "--budget", "200", "--steps", "20",
                                  "--batch-size", "32", "--seed", "3", "--threads", "1", "--calibration-cases", "0", "--out", again + "/gl.sbim"])
        XCTAssertEqual(train2.status, 0, train2.stderr)
        // the manifest records wall time; the weights must be identical, whatever the thread count
        XCTAssertEqual(try tarMember(model, "weights.safetensors"), try tarMember(again + "/gl.sbim", "weights.safetensors"),
                       "retraining with 1 thread must give bit-identical weights")

        let inspect = try CLI.run(["inspect", pinned])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssert(inspect.stdout.contains("theta: parameter, a vector of 10 values"), inspect.stdout)
        XCTAssert(inspect.stdout.contains("Calibration skipped: calibration skipped at training time (--calibration-cases 0)"), inspect.stdout)
        XCTAssert(inspect.stdout.contains("sbiwatch train --task gaussian_linear --budget 200 --seed 3 --steps 20 --batch-size 32"), inspect.stdout)

        let csv = dir.appendingPathComponent("post.csv").path
        let xs = (0..<10).map { String(Double($0) / 10) }.joined(separator: ",")
        let sample = try CLI.run(["sample", "--model", pinned, "--observe", "x=\(xs)", "--samples", "50",
                                  "--steps", "10", "--out", csv])
        XCTAssertEqual(sample.status, 0, sample.stderr)
        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 51)
        XCTAssertEqual(lines[0], Substring((0..<10).map { "theta[\($0)]" }.joined(separator: ",")))
        XCTAssert(lines.dropFirst().allSatisfy { $0.split(separator: ",").count == 10 && $0.split(separator: ",").allSatisfy { Double($0)?.isFinite == true } })

        // one element observed, two targets, an interval
        let mixed = try CLI.run(["sample", "--model", model, "--observe", "theta[0]=0.3", "--interval", "x[1]=0:0.5",
                                 "--target", "x[0]", "x[1]", "--samples", "20", "--steps", "10", "--out", csv])
        XCTAssertEqual(mixed.status, 0, mixed.stderr)
        let mixedLines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(mixedLines[0], "x[0],x[1]")
        XCTAssertEqual(mixedLines.count, 21)

        // same seed, same samples
        let csv2 = dir.appendingPathComponent("post2.csv").path
        _ = try CLI.run(["sample", "--model", pinned, "--observe", "x=\(xs)", "--samples", "50", "--steps", "10", "--out", csv2])
        let first = try String(contentsOfFile: csv2, encoding: .utf8)
        _ = try CLI.run(["sample", "--model", pinned, "--observe", "x=\(xs)", "--samples", "50", "--steps", "10", "--out", csv2])
        XCTAssertEqual(first, try String(contentsOfFile: csv2, encoding: .utf8))
    }

    /// `train --init` starts from a trained model's weights: at a learning rate of 1e-9 two steps leave
    /// them as they were (a fresh start lands far away); the card lists the first model's command
    /// before the fine-tuning one; a model of other variables or another network is refused.
    func testTrainFromAnotherModelsWeights() throws {
        func weights(_ archive: String) throws -> [Float] {
            let d = [UInt8](try tarMember(archive, "weights.safetensors"))
            let header = d[0..<8].enumerated().reduce(0) { $0 | Int($1.1) << (8 * $1.0) }
            let body = Array(d[(8 + header)...])
            return stride(from: 0, to: body.count, by: 4).map { k in
                Float(bitPattern: UInt32(body[k]) | UInt32(body[k + 1]) << 8 | UInt32(body[k + 2]) << 16 | UInt32(body[k + 3]) << 24)
            }
        }
        let base = ["train", "--task", "gaussian_linear", "--budget", "200", "--batch-size", "32", "--seed", "3",
                    "--threads", "1", "--calibration-cases", "0"]
        let a = dir.appendingPathComponent("a.sbim").path, b = dir.appendingPathComponent("b.sbim").path
        let fresh = dir.appendingPathComponent("fresh.sbim").path
        for (args, out) in [(["--steps", "20"], a), (["--steps", "2", "--init", a, "--learning-rate", "1e-9"], b), (["--steps", "2"], fresh)] {
            let r = try CLI.run(base + args + ["--out", out])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let wa = try weights(a), wb = try weights(b), wf = try weights(fresh)
        XCTAssertEqual(wa.count, wb.count)
        XCTAssertLessThan(zip(wa, wb).map { abs($0 - $1) }.max()!, 1e-5, "fine-tuning at 1e-9 must keep the initial weights")
        XCTAssertGreaterThan(zip(wa, wf).map { abs($0 - $1) }.max()!, 1e-3, "a fresh start is elsewhere")
        let inspect = try CLI.run(["inspect", b])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssert(inspect.stdout.contains("rebuild:   sbiwatch train --task gaussian_linear --budget 200 --seed 3 --steps 20 --batch-size 32"), inspect.stdout)
        XCTAssert(inspect.stdout.contains("--steps 2 --batch-size 32 --config small --sde ve --mask undirected --init a.sbim --learning-rate 1e-09"), inspect.stdout)
        for (args, needle) in [(["--task", "two_moons", "--budget", "200", "--init", a], "models other variables than this run"),
                               (["--task", "gaussian_linear", "--budget", "200", "--config", "large", "--init", a], "is a small network with undirected mask")] {
            let r = try CLI.run(["train"] + args + ["--steps", "1", "--calibration-cases", "0", "--out", dir.appendingPathComponent("x.sbim").path])
            XCTAssertEqual(r.status, 64, r.stderr)
            XCTAssert(r.stderr.contains(needle), r.stderr)
        }
    }

    /// A one-step gaussian_linear training with `extra` options is refused (status 64) with `message`.
    func assertGaussianLinearTrainingRefused(_ extra: [String], _ message: String, line: UInt = #line) throws {
        let r = try CLI.run(["train", "--task", "gaussian_linear", "--budget", "60", "--steps", "1", "--calibration-cases", "0",
                             "--out", dir.appendingPathComponent("refused.sbim").path] + extra)
        XCTAssertEqual(r.status, 64, r.stderr, line: line)
        XCTAssert(r.stderr.contains(message), r.stderr, line: line)
    }

    /// A two-step training of a small sird network on 60 simulations, without calibration (add --out).
    let tinySIRDTraining = ["train", "--task", "sird", "--budget", "60", "--steps", "2", "--batch-size", "8", "--config", "small",
                            "--threads", "1", "--calibration-cases", "0"]

    /// Trains the tiny sird with `options` into `name` in the test directory (status 0 asserted) and
    /// returns the archive's path and its `inspect` output (the card, with the rebuild command).
    func trainTinySIRD(_ options: [String], to name: String, line: UInt = #line) throws -> (path: String, card: String) {
        let out = dir.appendingPathComponent(name).path
        let r = try CLI.run(tinySIRDTraining + options + ["--out", out])
        XCTAssertEqual(r.status, 0, r.stderr, line: line)
        return (out, try CLI.run(["inspect", out]).stdout)
    }

    /// `train --init` may change max points and declared observation noise (they shape the training
    /// examples, not the network): a small sird model trained with up to 5 times per variable, copied
    /// without infected's declared noise (as models trained before the tasks declared it), is fine-tuned
    /// with up to 8; the run says both, the new model answers 8 times directly, and its card lists both commands.
    func testInitMayChangeMaxPointsAndNoise() throws {
        let base = tinySIRDTraining
        let a = dir.appendingPathComponent("s5.sbim").path, b = dir.appendingPathComponent("s8.sbim").path
        let first = try CLI.run(base + ["--max-points", "5", "--out", a])
        XCTAssertEqual(first.status, 0, first.stderr)
        let loaded = try ModelArchive.load(a)
        var manifest = loaded.manifest
        let infected = try XCTUnwrap(manifest.spec.variables.firstIndex { $0.name == "infected" })
        XCTAssertNotNil(manifest.spec.variables[infected].noise)
        manifest.spec.variables[infected].noise = nil
        try ModelArchive.save(try ModelArchive.encode(loaded.model, manifest: manifest, trust: nil), to: a)
        let tuned = try CLI.run(base + ["--max-points", "8", "--init", a, "--learning-rate", "0.0001", "--out", b])
        XCTAssertEqual(tuned.status, 0, tuned.stderr)
        XCTAssert(tuned.stderr.contains("--init: beta was trained with up to 5 times, this run draws up to 8"), tuned.stderr)
        XCTAssert(tuned.stderr.contains("--init: infected's declared observation noise was none, this run's is lognormal 0.05"), tuned.stderr)
        let inspect = try CLI.run(["inspect", b]).stdout
        XCTAssert(inspect.contains("queried at up to 8 times directly"), inspect)
        XCTAssert(inspect.contains("--max-points 5") && inspect.contains("--max-points 8") && inspect.contains("--init s5.sbim"), inspect)
    }

    /// `--forecast-masks` is recorded in the rebuild command, refused above 0.5 and for a model without
    /// data series.
    func testForecastMasksOption() throws {
        let (_, card) = try trainTinySIRD(["--forecast-masks", "0.25"], to: "f.sbim")
        XCTAssert(card.contains("--series-noise restored --forecast-masks 0.25 --config small"), card)
        let tooMany = try CLI.run(["train", "--task", "sird", "--budget", "60", "--steps", "1", "--forecast-masks", "0.7",
                                   "--out", dir.appendingPathComponent("g.sbim").path])
        XCTAssertEqual(tooMany.status, 64, tooMany.stderr)
        XCTAssert(tooMany.stderr.contains("--forecast-masks 0.7: give a share from 0 to 0.5"), tooMany.stderr)
        try assertGaussianLinearTrainingRefused(["--forecast-masks", "0.2"], "--forecast-masks: the model has no data series to forecast")
    }

    /// `--bounded-parameters logit`: recorded in the card's command and the archive's normalisation,
    /// samples inside the priors' supports even after two steps, `--init` must repeat it, and a model
    /// without a bounded parameter refuses it.
    func testBoundedParametersOption() throws {
        let (out, card) = try trainTinySIRD(["--bounded-parameters", "logit"], to: "b.sbim")
        let model = try ModelArchive.load(out).model
        let logit = try XCTUnwrap(model.normalization.logit)
        XCTAssertEqual(logit[try XCTUnwrap(model.spec.variableIndex(named: "gamma"))], LogitBounds(lower: 0, upper: 0.5))
        XCTAssert(card.contains("--series-noise restored --bounded-parameters logit --config small"), card)
        let csv = dir.appendingPathComponent("g.csv").path
        let sampled = try CLI.run(["sample", "--model", out, "--target", "gamma", "--target", "I0", "--samples", "200",
                                   "--steps", "10", "--threads", "1", "--out", csv])
        XCTAssertEqual(sampled.status, 0, sampled.stderr)
        let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").dropFirst()
            .map { $0.split(separator: ",").map { Double($0)! } }
        XCTAssertEqual(rows.count, 200)
        for row in rows { XCTAssert(row[0] > 0 && row[0] < 0.5 && row[1] > 0 && row[1] < 0.2, "\(row)") }
        // a file that observes gamma outside its support is refused, naming the value and the range
        let nc = try ncgen("""
        netcdf g {
        dimensions:
          t = 3 ;
        variables:
          double t(t) ; t:units = "days" ;
          double infected(t) ;
          double gamma ;
          :sbiwatch_model = "sird" ;
        data:
          t = 1, 2, 3 ;
          infected = 0.1, 0.2, 0.3 ;
          gamma = 0.7 ;
        }
        """, "g")
        let outbox = dir.appendingPathComponent("outbox").path
        try FileManager.default.createDirectory(atPath: outbox, withIntermediateDirectories: true)
        let refused = try CLI.run(["process", nc, "--model", "sird=" + out, "--outbox", outbox, "--samples", "4"])
        XCTAssertNotEqual(refused.status, 0, refused.stderr)
        XCTAssert(refused.stderr.contains("gamma = 0.7 is outside [0, 0.5]"), refused.stderr)
        let mismatched = try CLI.run(tinySIRDTraining + ["--init", out, "--out", dir.appendingPathComponent("c.sbim").path])
        XCTAssertEqual(mismatched.status, 64, mismatched.stderr)
        XCTAssert(mismatched.stderr.contains("was trained with --bounded-parameters logit, this run with raw"), mismatched.stderr)
        try assertGaussianLinearTrainingRefused(["--bounded-parameters", "logit"], "no parameter of the model has a bounded prior support")
    }

    /// `--bounded-parameters logit-functions`: only beta(t)'s nodes get logit bounds (the scalars stay
    /// raw), the card records it, `--init` must repeat it (naming what the model was trained with), and
    /// a model without a function-valued parameter refuses it.
    func testLogitFunctionsOption() throws {
        let (out, card) = try trainTinySIRD(["--bounded-parameters", "logit-functions"], to: "f.sbim")
        let model = try ModelArchive.load(out).model
        let logit = try XCTUnwrap(model.normalization.logit)
        for (node, v) in model.spec.variableOfNode.enumerated() {
            let variable = model.spec.variables[v]
            if variable.name == "beta" { XCTAssertEqual(logit[node], LogitBounds(lower: 0, upper: 1), "beta node \(node)") }
            else { XCTAssertNil(logit[node], "\(variable.name) node \(node) stays raw") }
        }
        XCTAssert(card.contains("--bounded-parameters logit-functions --config small"), card)
        let mismatched = try CLI.run(tinySIRDTraining + ["--bounded-parameters", "logit", "--init", out,
                                                         "--out", dir.appendingPathComponent("c.sbim").path])
        XCTAssertEqual(mismatched.status, 64, mismatched.stderr)
        XCTAssert(mismatched.stderr.contains("was trained with --bounded-parameters logit-functions, this run with logit"), mismatched.stderr)
        try assertGaussianLinearTrainingRefused(["--bounded-parameters", "logit-functions"],
                                                "no function-valued parameter of the model has a bounded prior support")
    }

    /// `--parametrisation edm` is stored in the archive's settings and the rebuild command, its model
    /// samples, `--init` must repeat the choice, and the VP SDE refuses it.
    func testParametrisationOption() throws {
        let (out, card) = try trainTinySIRD(["--parametrisation", "edm"], to: "e.sbim")
        XCTAssertEqual(try ModelArchive.load(out).model.settings.parametrisation, .edm)
        XCTAssert(card.contains("--mask undirected --parametrisation edm --sampler"), card)
        XCTAssert(card.contains("undirected mask, ve SDE, edm parametrisation"), card)
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
        tar.arguments = ["-xzf", out, "-C", dir.path, "README.md"]
        try tar.run(); tar.waitUntilExit()
        let archiveReadme = try String(contentsOf: dir.appendingPathComponent("README.md"), encoding: .utf8)
        XCTAssert(archiveReadme.contains("VE SDE, EDM preconditioning (Karras et al. 2022)."), archiveReadme)
        let csv = dir.appendingPathComponent("e.csv").path
        let sampled = try CLI.run(["sample", "--model", out, "--target", "gamma", "--samples", "50",
                                   "--steps", "10", "--threads", "1", "--out", csv])
        XCTAssertEqual(sampled.status, 0, sampled.stderr)
        let values = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").dropFirst().map { Double($0)! }
        XCTAssertEqual(values.count, 50)
        XCTAssert(values.allSatisfy(\.isFinite))
        let mismatched = try CLI.run(tinySIRDTraining + ["--init", out, "--out", dir.appendingPathComponent("n.sbim").path])
        XCTAssertEqual(mismatched.status, 64, mismatched.stderr)
        XCTAssert(mismatched.stderr.contains("was trained with --parametrisation edm, this run with noise"), mismatched.stderr)
        try assertGaussianLinearTrainingRefused(["--sde", "vp", "--parametrisation", "edm"], "--parametrisation edm needs --sde ve")
    }

    /// `--loss-weights sqrt-variables` is recorded in the rebuild command (the default, tokens, is not:
    /// `testFunctionTokensOption`'s command has nothing between --function-tokens and --config); an
    /// unknown choice is a usage error naming the choices; a model whose every variable has one token
    /// (gaussian_linear), where every weight would be 1, is refused.
    func testLossWeightsOption() throws {
        let (_, card) = try trainTinySIRD(["--loss-weights", "sqrt-variables"], to: "w.sbim")
        XCTAssert(card.contains("--series-noise restored --loss-weights sqrt-variables --config small"), card)
        let bad = try CLI.run(tinySIRDTraining + ["--loss-weights", "variables", "--out", dir.appendingPathComponent("x.sbim").path])
        XCTAssertEqual(bad.status, 64, bad.stderr)
        XCTAssert(bad.stderr.contains("tokens") && bad.stderr.contains("sqrt-variables"), bad.stderr)
        try assertGaussianLinearTrainingRefused(["--loss-weights", "sqrt-variables"],
                                                "--loss-weights sqrt-variables: every variable of the model has one token per example")
    }

    /// `--function-tokens half-dense` is recorded in the rebuild command of a model with a function-valued
    /// parameter (sird's beta) and refused for a model without one.
    func testFunctionTokensOption() throws {
        let (_, card) = try trainTinySIRD(["--function-tokens", "half-dense"], to: "s.sbim")
        XCTAssert(card.contains("--batch-size 8 --series-noise restored --function-tokens half-dense --config small"), card)
        try assertGaussianLinearTrainingRefused(["--function-tokens", "half-dense"],
                                                "--function-tokens half-dense: the model has no function-valued parameter")
    }

    func testClearErrors() throws {
        let model = dir.appendingPathComponent("gl.sbim").path
        XCTAssertEqual(try CLI.run(["train", "--task", "gaussian_linear", "--budget", "100", "--steps", "2",
                                    "--batch-size", "8", "--calibration-cases", "0", "--out", model]).status, 0)
        let csv = dir.appendingPathComponent("o.csv").path
        let cases: [([String], Int32, String)] = [
            (["train", "--task", "nope", "--out", dir.appendingPathComponent("n.sbim").path], 64, "unknown task 'nope'"),
            (["sample", "--model", model, "--observe", "y=1", "--out", csv], 64, "no variable 'y'"),
            (["sample", "--model", model, "--observe", "x=1,2", "--out", csv], 64, "x has 10 values, 2 given"),
            (["sample", "--model", model, "--observe", "x[10]=1", "--out", csv], 64, "out of range"),
            (["sample", "--model", model, "--observe", "theta[0]=abc", "--out", csv], 64, "not a finite number"),
            (["sample", "--model", model + "@sha256:" + String(repeating: "0", count: 64), "--out", csv], 78, "the pin asks for"),
            (["sample", "--model", dir.appendingPathComponent("none.sbim").path, "--out", csv], 66, "does not exist"),
            (["sample", "--model", model, "--interval", "x[0]=2:1", "--out", csv], 64, "LO must be below HI"),
        ]
        for (args, status, message) in cases {
            let r = try CLI.run(args)
            XCTAssertEqual(r.status, status, "\(args): \(r.stderr)")
            XCTAssert(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: csv), "a failed run must not leave output")
    }
}

final class AccuracyBenchCommandTests: TemporaryDirectoryTestCase {
    /// `bench accuracy` of two_moons at 200 simulations and 5 steps with `extra` options; the run must
    /// succeed and keep its archive in --models under the name `archive`, which is returned loaded.
    func tinyTwoMoonsAccuracy(_ extra: [String], archive: String) throws -> (RunResult, LoadedModel) {
        let models = path("models")
        let r = try CLI.run(["bench", "accuracy", "--tasks", "two_moons", "--budget", "200", "--steps", "5",
                             "--observations", "1", "--samples", "100", "--sampler", "sde", "--sampler-steps", "5",
                             "--threads", "1", "--models", models, "--json"] + extra)
        XCTAssertEqual(r.status, 0, r.stderr)
        return (r, try ModelArchive.load(models + "/" + archive))
    }

    /// `--bounded-parameters logit` trains the task's bounded parameters through the logit and keeps
    /// the archive under its own name (two_moons' theta has the prior's support [-1, 1]).
    func testAccuracyTrainsWithTheLogitTransformUnderItsOwnName() throws {
        let (_, loaded) = try tinyTwoMoonsAccuracy(["--bounded-parameters", "logit"], archive: "two_moons-200-undirected-5-logit.sbim")
        XCTAssertEqual(loaded.model.normalization.logit?.first ?? nil, LogitBounds(lower: -1, upper: 1))
        XCTAssert(loaded.manifest.provenance.command.contains("--bounded-parameters logit"), loaded.manifest.provenance.command)
    }

    /// `--parametrisation edm` trains EDM-preconditioned networks, kept under their own name, and the
    /// entries say which parametrisation answered.
    func testAccuracyTrainsWithEDMUnderItsOwnName() throws {
        let (r, loaded) = try tinyTwoMoonsAccuracy(["--parametrisation", "edm"], archive: "two_moons-200-undirected-5-edm.sbim")
        XCTAssertEqual(loaded.model.settings.parametrisation, .edm)
        XCTAssert(loaded.manifest.provenance.command.contains("--parametrisation edm"), loaded.manifest.provenance.command)
        let entries = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [[String: Any]]
        XCTAssertEqual(entries.first?["parametrisation"] as? String, "edm")
    }

    /// `bench accuracy` end to end on a tiny run: trains, keeps the archive in --models, reports
    /// both C2STs per observation with the published figure at its budget (10^3), and reuses the archive on a second run.
    func testAccuracyReportsBothClassifiersAndReusesItsModel() throws {
        let models = path("models")
        let arguments = ["bench", "accuracy", "--tasks", "two_moons", "--budget", "1000", "--steps", "30",
                         "--observations", "2", "--samples", "300", "--sampler", "sde", "--sampler-steps", "10", "--threads", "1",
                         "--models", models, "--json"]
        let first = try CLI.run(arguments)
        XCTAssertEqual(first.status, 0, first.stderr)
        let entries = try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as! [[String: Any]]
        XCTAssertEqual(entries.count, 1)
        let e = entries[0]
        XCTAssertEqual(e["task"] as? String, "two_moons")
        XCTAssertEqual(e["training_steps"] as? Int, 30)
        XCTAssertEqual(e["sampler_steps"] as? Int, 10)
        XCTAssertEqual(e["parametrisation"] as? String, "noise")
        XCTAssertEqual(e["published_c2st"] as? Double, 0.61, "the published figure at 10^3 simulations")
        for key in ["c2st", "c2st_rf"] {
            let scores = e[key] as! [Double]
            XCTAssertEqual(scores.count, 2, key)
            // a 30-step network is far from the posterior: both classifiers must see it
            for s in scores { XCTAssertGreaterThan(s, 0.6, key); XCTAssertLessThanOrEqual(s, 1, key) }
            XCTAssertEqual(e[key + "_mean"] as! Double, scores.reduce(0, +) / 2, accuracy: 1e-12, key)
        }
        XCTAssert(FileManager.default.fileExists(atPath: models + "/two_moons-1000-undirected-30.sbim"))
        XCTAssertEqual(e["network_evaluations"] as? Int, 9)
        // reused, and compared with a second sampler on the same observations and references
        let second = try CLI.run(arguments + ["--samplers", "sde:10", "dpmpp2m:5:low=0.05", "edm:3:churn=10"])
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssert(second.stderr.contains("reusing"), second.stderr)
        let again = try JSONSerialization.jsonObject(with: Data(second.stdout.utf8)) as! [[String: Any]]
        XCTAssertEqual(again.count, 3)
        XCTAssertEqual(again[0]["c2st"] as! [Double], e["c2st"] as! [Double], "same model, seeds and observations")
        XCTAssertEqual(again[0]["c2st_rf"] as! [Double], e["c2st_rf"] as! [Double])
        XCTAssertEqual(again[1]["sampler"] as? String, "dpmpp2m")
        XCTAssertEqual(again[1]["network_evaluations"] as? Int, 5)
        XCTAssertEqual((again[1]["c2st"] as! [Double]).count, 2)
        XCTAssertEqual(again[1]["sigma_low"] as? Double, 0.05)
        XCTAssertNil(again[0]["sigma_low"], "the SDE on a t grid has no noise levels")
        XCTAssertEqual(again[2]["churn"] as? Double, 10)
        XCTAssertEqual(again[2]["sigma_low"] as? Double, 0.002)
        for sampler in ["edm:0", "sde:10:low=0.05", "dpmpp2m:5:churn=3", "dpmpp2m:5:low=0", "edm:5:spin=2"] {
            let bad = try CLI.run(["bench", "accuracy", "--samplers", sampler, "--json"])
            XCTAssertNotEqual(bad.status, 0, sampler)
            XCTAssert(bad.stderr.contains("samplers"), bad.stderr)
        }
    }
}
