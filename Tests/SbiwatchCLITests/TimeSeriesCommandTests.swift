import Foundation
import XCTest
import SbiTestSupport

/// Time-indexed variables through the real binary: a training set written by `simulate`, a tiny model
/// trained from it, function queries on several grids and refusal outside the time domain.
final class TimeSeriesCommandTests: TemporaryDirectoryTestCase {
    /// `inspect` and the model card inside the archive describe each variable of the shipped SIRD
    /// model: kind, scalar or function of time, time domain, prior range, units; the card also says
    /// what the model is for and carries the calibration table.
    func testInspectAndModelCardDescribeEachVariable() throws {
        let archive = CLI.repository.appendingPathComponent("fixtures/models/sird.sbim").path
        let inspect = try CLI.run(["inspect", archive])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        let card = try Tool.run("/bin/tar", ["xzf", archive, "-O", "README.md"])
        XCTAssertEqual(card.status, 0, card.stderr)
        // inspect describes the archive with today's words; the card keeps the words it was written with
        XCTAssert(inspect.stdout.contains("infected: data, a time series on [0, 50] days, up to 20 observation or forecast times per file answered directly"), inspect.stdout)
        XCTAssert(card.stdout.contains("`infected`: data, a time series on [0, 50] days, up to 20 observation times per file"), card.stdout)
        for text in [inspect.stdout, card.stdout.replacingOccurrences(of: "`", with: "")] {
            for line in ["gamma: parameter, a scalar; prior range [0, 0.5]; units 1/day",
                         "beta: parameter, a function of time on [0, 50] days, queried at up to 20 times directly",
                         "| gamma | pass |", "Worst coverage deviation from nominal"] {
                XCTAssert(text.contains(line), "\(line) missing from\n\(text)")
            }
        }
        XCTAssert(card.stdout.contains("## Intended use\n\nAmortized posterior inference of gamma, delta, I0, beta"), card.stdout)
    }

    func testTrainingSetTrainAndGridQueries() throws {
        let sims = dir.appendingPathComponent("sird.nc").path
        let sim = try CLI.run(["simulate", "--task", "sird", "--count", "60", "--training-set", "--seed", "4", "--out", sims])
        XCTAssertEqual(sim.status, 0, sim.stderr)
        // ncdump reads what libnetcdf wrote
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/ncdump")
        p.arguments = ["-h", sims]
        let pipe = Pipe(); p.standardOutput = pipe
        try p.run(); p.waitUntilExit()
        let header = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssert(header.contains("double beta(simulation, time)"), header)
        XCTAssert(header.contains(":sbiwatch_format = \"sbiwatch-training-1\""), header)

        let model = dir.appendingPathComponent("sird.sbim").path
        let train = try CLI.run(["train", "--simulations", sims, "--steps", "3", "--batch-size", "8", "--calibration-cases", "0", "--out", model])
        XCTAssertEqual(train.status, 0, train.stderr)
        let inspect = try CLI.run(["inspect", model])
        XCTAssert(inspect.stdout.contains("sbiwatch train --simulations sird.nc --seed 0 --steps 3"), inspect.stdout)
        XCTAssert(inspect.stdout.contains("simulation file"), inspect.stdout)

        // with a calibration pass, a fifth of the file is held out of training for it, and the card says so
        let calibrated = dir.appendingPathComponent("sird-cal.sbim").path
        let big = dir.appendingPathComponent("sird-200.nc").path
        XCTAssertEqual(try CLI.run(["simulate", "--task", "sird", "--count", "200", "--training-set", "--seed", "5", "--out", big]).status, 0)
        let cal = try CLI.run(["train", "--simulations", big, "--steps", "3", "--batch-size", "8", "--sampler-steps", "3",
                               "--calibration-cases", "20", "--out", calibrated])
        XCTAssertEqual(cal.status, 0, cal.stderr)
        XCTAssert(cal.stderr.contains("holding out 40 of 200 simulations for calibration"), cal.stderr)
        let card = try CLI.run(["inspect", calibrated]).stdout
        XCTAssert(card.contains("Measured on 20 held-out simulations (a held-out split of sird-200.nc"), card)
        XCTAssert(card.contains("Verdicts: a file's smallest check p-value is ranked among those of these 20 held-out cases."), card)
        XCTAssert(card.contains("160 simulations"), "trained on the rest: \(card)")

        let csv = dir.appendingPathComponent("q.csv").path
        for points in [10, 100, 400] {
            let r = try CLI.run(["sample", "--model", model, "--observe", "infected=1:0.1,4.5:0.12,9:0.2", "--observe", "dead=9:0.01",
                                 "--target", "gamma", "beta@0:50:\(points)", "--samples", "3", "--steps", "3", "--out", csv])
            XCTAssertEqual(r.status, 0, r.stderr)
            let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(lines.count, 4)
            let header = lines[0].split(separator: ",")
            XCTAssertEqual(header.count, 1 + points)
            XCTAssertEqual(header[1], "beta@0.0")
            XCTAssertEqual(header.last, "beta@50.0")
            XCTAssert(lines.dropFirst().allSatisfy { $0.split(separator: ",").count == 1 + points })
        }
        // a forecast beyond the trained domain, and an observation before it, are refused
        for args in [["--target", "infected@45,60"], ["--observe", "infected=-1:0.1", "--target", "gamma"]] {
            let r = try CLI.run(["sample", "--model", model] + args + ["--samples", "3", "--out", csv])
            XCTAssertEqual(r.status, 65, r.stderr)
            XCTAssert(r.stderr.contains("outside the time domain of infected, [0.0, 50.0] days"), r.stderr)
        }
        let noTimes = try CLI.run(["sample", "--model", model, "--target", "beta", "--out", csv])
        XCTAssertEqual(noTimes.status, 64)
        XCTAssert(noTimes.stderr.contains("give query times"), noTimes.stderr)
    }
}
