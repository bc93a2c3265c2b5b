import Foundation
import XCTest
import SbiTestSupport

/// `sbiwatch process` through the real binary on real NetCDF files: round trips, determinism, every
/// kind of bad input, and a snapshot of the report on the shipped gaussian-linear model.
final class ProcessCommandTests: TemporaryDirectoryTestCase {
    static var sirdModel: String { TinyModels.sird }

    func outputs(_ stem: String, in folder: String) -> [String] {
        [".samples.nc", ".report.json", ".report.html", ".error.json"].filter {
            FileManager.default.fileExists(atPath: folder + "/" + stem + $0)
        }
    }

    func json(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
    }

    func testRoundTripSIRD() throws {
        let obs = path("region-17.nc")
        let sim = try CLI.run(["simulate", "--task", "sird", "--missing", "0.2", "--seed", "5", "--out", obs])
        XCTAssertEqual(sim.status, 0, sim.stderr)
        let out = path("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let r = try CLI.run(["process", obs, "--model", "sird=\(Self.sirdModel)", "--outbox", out, "--samples", "30", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(outputs("region-17", in: out), [".samples.nc", ".report.json", ".report.html"])
        XCTAssertEqual(r.stdout.split(separator: "\n").count, 3, r.stdout)

        // the samples, read back by ncdump
        let header = try Tool.run("/usr/bin/ncdump", ["-h", out + "/region-17.samples.nc"]).stdout
        for needle in ["sample = 30 ;", "beta_time = 51 ;", "infected_time = 14 ;", "double gamma(sample) ;",
                       "double beta(sample, beta_time) ;", "double infected(sample, infected_time) ;",
                       "beta_time:units = \"days since 2026-10-01\"", ":sbiwatch_model = \"sird\"", ":sbiwatch_input_sha256 = "] {
            XCTAssert(header.contains(needle), "\(needle) missing from\n\(header)")
        }
        let gamma = try Tool.run("/usr/bin/ncdump", ["-v", "gamma", out + "/region-17.samples.nc"]).stdout
        let values = gamma.components(separatedBy: "gamma =").last!.split(whereSeparator: { ", ;\n}".contains($0) }).compactMap { Double($0) }
        XCTAssertEqual(values.count, 30, gamma)

        // the report
        let report = try json(out + "/region-17.report.json")
        XCTAssertEqual(Set((report["parameters"] as! [String: Any]).keys), ["gamma", "delta", "I0"])
        let beta = (report["functions"] as! [String: Any])["beta"] as! [String: Any]
        XCTAssertEqual((beta["time"] as! [Double]).count, 51)
        XCTAssertEqual((beta["q50"] as! [Double]).count, 51)
        let forecast = (report["predictions"] as! [String: Any])["infected"] as! [String: Any]
        XCTAssertEqual(forecast["time"] as! [Double], (37...50).map(Double.init))
        // a model trained with up to 100 times per variable answers both grids itself
        for (band, count) in [(beta, 51), (forecast, 14)] {
            let answer = band["answered_by"] as! [String: Any]
            XCTAssertEqual(answer["method"] as? String, "direct", "\(answer)")
            XCTAssertEqual(answer["times"] as? Int, count)
            XCTAssertEqual(answer["support_times"] as? Int, count)
        }
        let observed = (report["observed"] as! [String: Any])["series"] as! [String: Any]
        let infected = observed["infected"] as! [String: Any]
        XCTAssert((1...19).contains((infected["time"] as! [Double]).count))
        XCTAssertEqual((report["sampler"] as! [String: Any])["steps"] as? Int, 5)
        XCTAssertEqual(((report["observed"] as! [String: Any])["calendar"] as! [String: Any])["date"] as? String, "2026-10-01")

        // the checks: one out-of-distribution check and one predictive check per observed series, a verdict with reasons
        let diagnostics = report["diagnostics"] as! [String: Any]
        XCTAssert(["ok", "caution", "unreliable"].contains(diagnostics["verdict"] as! String))
        XCTAssertFalse((diagnostics["reasons"] as! [String]).isEmpty)
        // sampled with 5 steps, not as the calibration pass was: the checks are not comparable with its cases
        XCTAssertEqual(diagnostics["combination"] as? String, "sidak", "\(diagnostics)")
        let checks = diagnostics["checks"] as! [[String: Any]]
        XCTAssertEqual(checks.map { $0["name"] as! String },
                       ["out_of_distribution", "posterior_predictive:infected", "posterior_predictive:recovered", "posterior_predictive:dead"])
        for c in checks {
            let p = c["p_value"] as! Double
            XCTAssert(p > 0 && p <= 1 && c["threshold"] as? Double == 0.05 && (c["flagged"] as! Bool) == (p < 0.05), "\(c)")
        }
        let predictive = (report["posterior_predictive"] as! [String: Any])["infected"] as! [String: Any]
        XCTAssertEqual(predictive["time"] as! [Double], infected["time"] as! [Double])
        XCTAssertEqual((predictive["q95"] as! [Double]).count, (infected["time"] as! [Double]).count)
        XCTAssertEqual(predictive["replicates"] as? Int, 30, "replicates: the first 100 posterior draws, here all 30")
        let gammaSummary = (report["parameters"] as! [String: Any])["gamma"] as! [String: Any]
        XCTAssertEqual(gammaSummary["prior_range"] as! [Double], [0, 0.5])
        XCTAssertNotNil(gammaSummary["contraction"] as? Double)

        // the page: each plot, and nothing fetched from elsewhere
        let html = try String(contentsOfFile: out + "/region-17.report.html", encoding: .utf8)
        XCTAssert(html.contains("class=\"verdict \(diagnostics["verdict"] as! String)\""), "the verdict leads the page")
        XCTAssert(html.contains(">2026-10-"), "time axes in calendar dates")
        XCTAssert(html.contains("predictive p = "), "observed points over their predictive bands")
        for id in ["id=\"warnings\"", "id=\"summary\"", "id=\"marginals\"", "id=\"pairs\"", "id=\"bands\"",
                   "aria-label=\"histogram of gamma\"", "aria-label=\"pair plot\"", "aria-label=\"beta (function)\"",
                   "aria-label=\"infected (prediction)\"", "aria-label=\"recovered (observed)\""] {
            XCTAssert(html.contains(id), "\(id) missing from the report page")
        }
        for external in ["http:", "https:", "<script", "<link", "src=", "url(", "@import"] {
            XCTAssertFalse(html.contains(external), "the report page refers to something outside it: \(external)")
        }
    }

    /// `sbiwatch_method = "interpolate"` on a query grid: 20 support times sampled, the rest
    /// interpolated, a data series with its declared observation noise restored; the report says so.
    /// "direct" beyond the trained density, or another word, is refused naming the variable.
    func testQueryMethodAttribute() throws {
        let out = path("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        func file(_ name: String, betaMethod: String, betaTimes: Int) throws -> String {
            let times = (0..<betaTimes).map { String(format: "%.4f", 50 * Double($0) / Double(betaTimes - 1)) }.joined(separator: ", ")
            return try ncgen("""
            netcdf \(name) {
            dimensions:
              time = 3 ; q = \(betaTimes) ; f = 30 ;
            variables:
              double time(time) ; time:units = "days" ;
              double infected(time) ;
              double beta_query_time(q) ; beta_query_time:sbiwatch_method = "\(betaMethod)" ;
              double infected_query_time(f) ; infected_query_time:sbiwatch_method = "interpolate" ;
            data:
              time = 1, 5, 9 ;
              infected = 0.01, 0.02, 0.04 ;
              beta_query_time = \(times) ;
              infected_query_time = \((0..<30).map { String(10 + Double($0)) }.joined(separator: ", ")) ;
            }
            """, name)
        }
        let ok = try file("asked", betaMethod: "interpolate", betaTimes: 51)
        let r = try CLI.run(["process", ok, "--model", "sird=\(Self.sirdModel)", "--outbox", out, "--samples", "8", "--steps", "3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try json(out + "/asked.report.json")
        let beta = ((report["functions"] as! [String: Any])["beta"] as! [String: Any])["answered_by"] as! [String: Any]
        XCTAssertEqual(beta["method"] as? String, "interpolated")
        XCTAssertEqual(beta["support_times"] as? Int, 20)
        XCTAssertNil(beta["noise"], "a parameter has no observation noise")
        let infected = ((report["predictions"] as! [String: Any])["infected"] as! [String: Any])["answered_by"] as! [String: Any]
        XCTAssertEqual(infected["support_times"] as? Int, 20)
        let noise = infected["noise"] as? [String: Any]
        XCTAssertEqual(noise?["kind"] as? String, "lognormal")
        XCTAssertEqual(noise?["std"] as? Double, 0.05)
        let notes = (report["diagnostics"] as! [String: Any])["notes"] as! [String]
        XCTAssert(notes.contains { $0.hasPrefix("infected on 30 times: sampled by the model at 20 support times") && $0.contains("lognormal 0.05") }, "\(notes)")
        let html = try String(contentsOfFile: out + "/asked.report.html", encoding: .utf8)
        XCTAssert(html.contains("beta: sampled by the model at 20 support times"), "the page says how beta was answered")

        for (name, method, count, needle) in [("toomany", "direct", 101, "at most 100 directly"),
                                              ("bogus", "spline", 51, "it must be \"direct\" or \"interpolate\"")] {
            let bad = try file(name, betaMethod: method, betaTimes: count)
            let e = try CLI.run(["process", bad, "--model", "sird=\(Self.sirdModel)", "--outbox", out, "--samples", "4", "--steps", "3"])
            XCTAssertEqual(e.status, 65, e.stderr)
            let error = try json(out + "/\(name).error.json")
            let message = error["message"] as? String ?? "\(error)"
            XCTAssert(message.contains("beta_query_time") && message.contains(needle), message)
        }
    }

    func testEveryNetCDFFormatAndUnitsIntervalsAliases() throws {
        let out = path("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        for format in ["classic", "64bit", "nc4"] {
            let obs = path("lv-\(format).nc")
            XCTAssertEqual(try CLI.run(["simulate", "--task", "sird", "--format", format, "--seed", "2", "--out", obs]).status, 0)
            let r = try CLI.run(["process", obs, "--model", Self.sirdModel, "--outbox", out, "--samples", "4"])
            XCTAssertEqual(r.status, 0, "\(format): \(r.stderr)")
        }
        // hours converted to days, an alias, a known rate, an interval, a NaN as missing, ignored extras
        let file = try ncgen("""
        netcdf hours {
        dimensions:
          obs = 4 ; q = 3 ; two = 2 ;
        variables:
          double obs(obs) ; obs:units = "hours since 2026-01-01 00:00" ;
          double cases(obs) ; cases:sbiwatch_variable = "infected" ;
          double gamma ;
          double I0_bounds(two) ;
          double beta_query_time(q) ; beta_query_time:units = "days" ;
          double station_height ;
        // global attributes:
          :sbiwatch_model = "sird" ; :sbiwatch_samples = 6 ; :sbiwatch_seed = 3 ;
        data:
          obs = 24, 48, 72, 96 ;
          cases = 0.01, NaN, 0.03, 0.05 ;
          gamma = 0.2 ;
          I0_bounds = 0.05, 0.1 ;
          beta_query_time = 1, 2, 3 ;
          station_height = 12 ;
        }
        """, "hours")
        let r = try CLI.run(["process", file, "--model", "sird=\(Self.sirdModel)", "--outbox", out, "--steps", "4"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try json(out + "/hours.report.json")
        let observed = report["observed"] as! [String: Any]
        let series = (observed["series"] as! [String: Any])["infected"] as! [String: Any]
        XCTAssertEqual(series["time"] as! [Double], [1, 3, 4])
        XCTAssertEqual(series["value"] as! [Double], [0.01, 0.03, 0.05])
        XCTAssertEqual(observed["scalars"] as! [String: Double], ["gamma": 0.2])
        XCTAssertEqual((observed["intervals"] as! [String: [Double]])["I0"], [0.05, 0.1])
        XCTAssertEqual(Set((report["parameters"] as! [String: Any]).keys), ["delta", "I0"])
        XCTAssertEqual(((report["functions"] as! [String: Any])["beta"] as! [String: Any])["time"] as! [Double], [1, 2, 3])
        let sampler = report["sampler"] as! [String: Any]
        XCTAssertEqual(sampler["samples"] as? Int, 6)
        XCTAssertEqual(sampler["seed"] as? Int, 3)
        XCTAssertEqual(sampler["resampling"] as? Int, 5)
        XCTAssertEqual(sampler["steps"] as? Int, 4, "--steps overrides the model's 5")
        let notes = (report["diagnostics"] as! [String: Any])["notes"] as! [String]
        XCTAssert(notes.contains { $0.contains("station_height") }, "\(notes)")
    }

    /// Constraints in the file's sbiwatch_constraints reach the sampler and the report (each with the
    /// fraction of draws satisfying it); a bad one is refused before sampling with exit 65, an error
    /// report quoting it and a caret under the offending part; `sample --constraint` does the same.
    func testConstraintsFromTheFileAndTheCommandLine() throws {
        let out = path("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        func file(_ name: String, _ constraints: String) throws -> String {
            try ncgen("""
            netcdf f {
            dimensions:
              t = 4 ;
            variables:
              double t(t) ; t:units = "days since 2026-01-01" ;
              double infected(t) ;
            // global attributes:
              :sbiwatch_model = "sird" ; :sbiwatch_samples = 40 ;
              :sbiwatch_constraints = "\(constraints)" ;
            data:
              t = 2, 6, 10, 14 ;
              infected = 0.01, 0.02, 0.04, 0.05 ;
            }
            """, name)
        }
        let good = try file("capped", "max(infected@30:50) <= 0.05; gamma in [0.1, 0.2]")
        let r = try CLI.run(["process", good, "--model", "sird=\(Self.sirdModel)", "--outbox", out, "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try json(out + "/capped.report.json")
        let constraints = try XCTUnwrap(report["constraints"] as? [[String: Any]], "report.json lists the constraints")
        XCTAssertEqual(constraints.map { $0["expression"] as? String }, ["max(infected@30:50) <= 0.05", "gamma in [0.1, 0.2]"])
        let satisfied = constraints.map { $0["satisfied"] as! Double }
        XCTAssert(satisfied.allSatisfy { (0...1).contains($0) }, "\(satisfied)")
        XCTAssertEqual((report["sampler"] as! [String: Any])["resampling"] as? Int, 5, "constraints get resampling steps")
        // the fraction is that of the written samples (this tiny model is untrained: no claim on its value)
        let dump = try Tool.run("/usr/bin/ncdump", ["-v", "gamma", out + "/capped.samples.nc"]).stdout
        let gammas = dump.components(separatedBy: "gamma =").last!.split(whereSeparator: { ", ;\n}".contains($0) }).compactMap { Double($0) }
        XCTAssertEqual(gammas.count, 40)
        XCTAssertEqual(satisfied[1], Double(gammas.filter { (0.1...0.2).contains($0) }.count) / 40, accuracy: 1e-9)
        let html = try String(contentsOfFile: out + "/capped.report.html", encoding: .utf8)
        XCTAssert(html.contains("id=\"constraints\"") && html.contains("max(infected@30:50) &lt;= 0.05"), "the page lists the constraints")

        let bad = try file("nonlinear", "gamma * delta <= 0.1")
        let e = try CLI.run(["process", bad, "--model", "sird=\(Self.sirdModel)", "--outbox", out, "--threads", "1"])
        XCTAssertEqual(e.status, 65, e.stderr)
        XCTAssertEqual(outputs("nonlinear", in: out), [".error.json"])
        let error = try json(out + "/nonlinear.error.json")
        let message = error["message"] as! String
        for needle in ["sbiwatch_constraints", "constraint 'gamma * delta <= 0.1'", "non-linear", "\n    gamma * delta <= 0.1\n            ^^^^^"] {
            XCTAssert(message.contains(needle), "\(needle) missing from \(message)")
        }
        let outside = try file("outside", "infected@80 <= 0.1")
        XCTAssertEqual(try CLI.run(["process", outside, "--model", "sird=\(Self.sirdModel)", "--outbox", out]).status, 65)
        XCTAssert((try json(out + "/outside.error.json")["message"] as! String).contains("outside the time domain of infected"))

        let csv = path("gamma.csv")
        let s = try CLI.run(["sample", "--model", Self.sirdModel, "--observe", "infected=2:0.01,6:0.02", "--constraint", "gamma + delta <= 0.3",
                             "--samples", "20", "--out", csv, "--threads", "1"])
        XCTAssertEqual(s.status, 0, s.stderr)
        XCTAssert(s.stderr.contains("constraint gamma + delta <= 0.3: satisfied by "), s.stderr)
        let refused = try CLI.run(["sample", "--model", Self.sirdModel, "--constraint", "kappa <= 1", "--samples", "5", "--out", csv])
        XCTAssertEqual(refused.status, 65, refused.stderr)
        XCTAssert(refused.stderr.contains("the model has no variable 'kappa'") && refused.stderr.contains("^^^^^"), refused.stderr)
    }

    /// A file with constraints is also sampled without them, and the report shows both: on the
    /// shipped gaussian-linear model with x = 0 the posterior of theta[0] is N(0, 0.05), so
    /// `theta[0] >= 0.3` holds for about 9% of free draws; guided, nearly all obey it, theta[0]
    /// moves up and the slack coordinates stay near 0.
    func testConstrainedReportShowsThePosteriorWithAndWithoutTheConstraints() throws {
        let out = path("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let file = try ncgen("""
        netcdf budget {
        dimensions:
          x_index = 10 ;
        variables:
          double x(x_index) ;
        // global attributes:
          :sbiwatch_model = "gaussian-linear" ; :sbiwatch_samples = 400 ; :sbiwatch_seed = 3 ;
          :sbiwatch_constraints = "theta[0] >= 0.3" ; :sbiwatch_resampling = 7 ;
        data:
          x = 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 ;
        }
        """, "budget")
        let pins = CLI.repository.appendingPathComponent("fixtures/models/PINS").path
        let r = try CLI.run(["process", file, "--config", pins, "--outbox", out, "--threads", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try json(out + "/budget.report.json")
        XCTAssertEqual((report["sampler"] as! [String: Any])["resampling"] as? Int, 7, "the file's sbiwatch_resampling")
        let constraint = try XCTUnwrap((report["constraints"] as? [[String: Any]])?.first)
        let with = constraint["satisfied"] as! Double, without = try XCTUnwrap(constraint["satisfied_without_constraints"] as? Double)
        XCTAssertGreaterThan(with, 0.9)
        XCTAssertLessThan(without, 0.2, "free draws of N(0, 0.05) exceed 0.3 about 9% of the time")
        let guided = report["parameters"] as! [String: [String: Any]]
        let free = try XCTUnwrap(report["unconstrained_parameters"] as? [String: [String: Any]], "the free posterior is reported")
        XCTAssertEqual(Set(free.keys), Set(guided.keys))
        let median = { (p: [String: [String: Any]], k: String) in p[k]!["q50"] as! Double }
        XCTAssertEqual(median(free, "theta[0]"), 0, accuracy: 0.1)
        XCTAssertGreaterThan(median(guided, "theta[0]"), 0.3)
        for k in 1..<10 {
            XCTAssertEqual(median(free, "theta[\(k)]"), 0, accuracy: 0.1)
            XCTAssertEqual(median(guided, "theta[\(k)]"), 0, accuracy: 0.1, "a slack coordinate stays where it was")
        }
        let html = try String(contentsOfFile: out + "/budget.report.html", encoding: .utf8)
        XCTAssert(html.contains("black outline: the same query without the file's constraints"), "the marginals show both")
        XCTAssert(html.contains("<th>without the constraints</th>") && html.contains("without the constraints: median [5%, 95%]"))
        XCTAssert(html.contains("<path d=\"M"), "the free marginal is drawn as an outline")

        let tooMany = try ncgen(try String(contentsOfFile: path("budget.cdl"), encoding: .utf8)
            .replacingOccurrences(of: ":sbiwatch_resampling = 7 ;", with: ":sbiwatch_resampling = 500 ;"), "toomany")
        let refused = try CLI.run(["process", tooMany, "--config", pins, "--outbox", out])
        XCTAssertEqual(refused.status, 65, refused.stderr)
        XCTAssert((try json(out + "/toomany.error.json")["message"] as! String).contains("sbiwatch_resampling must be an integer in 0...100"))
    }

    /// `simulate --task hodgkin_huxley --constraint`: a recorded neuron's 7 voltage features, the
    /// energy token left out (its true value an attribute) and the budget in sbiwatch_constraints;
    /// `process` samples the energy with the parameters and reports the budget with and without it.
    func testHodgkinHuxleyFileWithAnEnergyBudget() throws {
        let file = path("neuron.nc"), out = path("out"), model = path("hh.sbim")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let t = try CLI.run(["train", "--task", "hodgkin_huxley", "--budget", "100", "--steps", "3", "--batch-size", "8",
                             "--sampler-steps", "5", "--calibration-cases", "0", "--out", model])
        XCTAssertEqual(t.status, 0, t.stderr)
        let s = try CLI.run(["simulate", "--task", "hodgkin_huxley", "--seed", "5", "--constraint", "energy <= 3000", "--out", file])
        XCTAssertEqual(s.status, 0, s.stderr)
        let header = try Tool.run("/usr/bin/ncdump", ["-h", file]).stdout
        for needle in ["double spikes ;", "double stim_kurtosis ;", ":sbiwatch_model = \"hodgkin-huxley\"", ":sbiwatch_constraints = \"energy <= 3000\"", ":true_energy = ", ":true_gNa = "] {
            XCTAssert(header.contains(needle), "\(needle) missing from\n\(header)")
        }
        XCTAssertFalse(header.contains("double energy"), "the energy is not measured")
        XCTAssertEqual(try CLI.run(["simulate", "--task", "hodgkin_huxley", "--constraint", "energy <= 1; gNa <= 90", "--out", path("x.nc")]).status, 64)
        let r = try CLI.run(["process", file, "--model", "hodgkin-huxley=\(model)", "--outbox", out, "--samples", "30", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try json(out + "/neuron.report.json")
        XCTAssertEqual((report["constraints"] as? [[String: Any]])?.first?["expression"] as? String, "energy <= 3000")
        XCTAssertNotNil((report["constraints"] as? [[String: Any]])?.first?["satisfied_without_constraints"] as? Double)
        let free = try XCTUnwrap(report["unconstrained_parameters"] as? [String: Any])
        XCTAssertEqual(Set(free.keys), ["Cm", "gNa", "gK", "gL", "ENa", "EK", "EL"])
        XCTAssertEqual(((report["observed"] as! [String: Any])["scalars"] as! [String: Double]).count, 7, "the 7 voltage features are observed")
    }

    func testSameInputModelAndSeedGiveIdenticalBytes() throws {
        let obs = path("det.nc")
        XCTAssertEqual(try CLI.run(["simulate", "--task", "sird", "--missing", "0.1", "--seed", "9", "--out", obs]).status, 0)
        var files: [(Data, String)] = []
        for (k, threads) in ["1", "2"].enumerated() {
            let out = path("out\(k)")
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let r = try CLI.run(["process", obs, "--model", Self.sirdModel, "--outbox", out, "--samples", "12", "--threads", threads],
                                environment: ["SOURCE_DATE_EPOCH": "1764000000"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let json = try String(contentsOfFile: out + "/det.report.json", encoding: .utf8)
            // timings are the one part of the report that measures this run
            let stable = json.replacingOccurrences(of: #""timings_seconds" : \{[^}]*\}"#, with: "", options: .regularExpression)
            XCTAssert(json.contains("\"created\" : \"2025-11-24T16:00:00Z\""), json)
            files.append((try Data(contentsOf: URL(fileURLWithPath: out + "/det.samples.nc")), stable))
        }
        XCTAssertEqual(files[0].0, files[1].0, "samples.nc differs between runs")
        XCTAssertEqual(files[0].1, files[1].1, "report.json differs between runs")
    }

    func testBadInputsGetAnErrorReportAndNothingElse() throws {
        let out = path("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        func series(_ t: String, _ v: String, units: String = "days since 2026-01-01", extra: String = "", model: String = "sird",
                    timeType: String = "double", valueType: String = "double") -> String {
            """
            netcdf f {
            dimensions:
              t = 4 ; q = 3 ;
            variables:
              \(timeType) t(t) ; t:units = "\(units)" ;
              \(valueType) infected(t) ; infected:_FillValue = -999. ;
              \(extra)
            // global attributes:
              :sbiwatch_model = "\(model)" ;
            data:
              t = \(t) ;
              infected = \(v) ;
            }
            """
        }
        let good = series("1, 2, 3, 4", "0.1, 0.2, 0.3, 0.4")
        var cases: [(String, String, String)] = [   // name, file path, expected text in the message
            ("unknown-variable", try ncgen(good.replacingOccurrences(of: "infected", with: "cases"), "unknown-variable"), "no variable the model knows"),
            ("no-time-coordinate", try ncgen(good.replacingOccurrences(of: "double t(t) ; t:units = \"days since 2026-01-01\" ;", with: "")
                .replacingOccurrences(of: "t = 1, 2, 3, 4 ;", with: ""), "no-time-coordinate"), "infected has no time coordinate"),
            ("time-not-numeric", try ncgen(series("\"abcd\"", "0.1, 0.2, 0.3, 0.4", timeType: "char"), "time-not-numeric"), "holds char values, not numbers"),
            ("time-nan", try ncgen(series("1, NaN, 3, 4", "0.1, 0.2, 0.3, 0.4"), "time-nan"), "missing or NaN time at index 1"),
            ("time-unsorted", try ncgen(series("1, 3, 2, 4", "0.1, 0.2, 0.3, 0.4"), "time-unsorted"), "is not sorted"),
            ("time-duplicated", try ncgen(series("1, 2, 2, 4", "0.1, 0.2, 0.3, 0.4"), "time-duplicated"), "repeats the time 2"),
            ("time-units", try ncgen(series("1, 2, 3, 4", "0.1, 0.2, 0.3, 0.4", units: "fortnights since 2026-01-01"), "time-units"), "not a time unit"),
            ("all-missing", try ncgen(series("1, 2, 3, 4", "_, _, _, _"), "all-missing"), "every observed value is missing"),
            ("wrong-type", try ncgen(series("1, 2, 3, 4", "\"abcd\"", valueType: "char").replacingOccurrences(of: "infected:_FillValue = -999. ;", with: ""), "wrong-type"), "infected holds char values"),
            ("wrong-shape", try ncgen(series("1, 2, 3, 4", "0.1, 0.2, 0.3, 0.4", extra: "double gamma(q) ;")
                .replacingOccurrences(of: "infected = 0.1, 0.2, 0.3, 0.4 ;", with: "infected = 0.1, 0.2, 0.3, 0.4 ; gamma = 1, 2, 3 ;"), "wrong-shape"), "the model's gamma has 1 value"),
            ("unknown-model", try ncgen(series("1, 2, 3, 4", "0.1, 0.2, 0.3, 0.4", model: "measles"), "unknown-model"), "asks for model 'measles'"),
            ("observed-outside-domain", try ncgen(series("1, 2, 3, 80", "0.1, 0.2, 0.3, 0.4"), "observed-outside-domain"), "outside the model's time domain [0, 50]"),
            ("query-outside-domain", try ncgen(series("1, 2, 3, 4", "0.1, 0.2, 0.3, 0.4", extra: "double beta_query_time(q) ; beta_query_time:units = \"days\" ;")
                .replacingOccurrences(of: "infected = 0.1, 0.2, 0.3, 0.4 ;", with: "infected = 0.1, 0.2, 0.3, 0.4 ; beta_query_time = 10, 60, 70 ;"), "query-outside-domain"),
             "beta_query_time asks for beta at 60"),
            ("two-query-grids", try ncgen(series("1, 2, 3, 4", "0.1, 0.2, 0.3, 0.4", extra: "double beta_query_time(q) ; double grid(q) ; grid:sbiwatch_variable = \"beta_query_time\" ;")
                .replacingOccurrences(of: "infected = 0.1, 0.2, 0.3, 0.4 ;", with: "infected = 0.1, 0.2, 0.3, 0.4 ; beta_query_time = 1, 2, 3 ; grid = 4, 5, 6 ;"), "two-query-grids"),
             "two variables give query times for beta"),
            ("absurd-size", try ncgen(good.replacingOccurrences(of: "t = 4 ;", with: "t = 1000000000 ;")
                .replacingOccurrences(of: "t = 1, 2, 3, 4 ;", with: "").replacingOccurrences(of: "infected = 0.1, 0.2, 0.3, 0.4 ;", with: "")
                .replacingOccurrences(of: "data:", with: ""), "absurd-size"), "the limit is 100000 per variable"),
        ]
        // files that are not NetCDF at all
        let empty = path("empty.nc"); FileManager.default.createFile(atPath: empty, contents: Data())
        let text = path("text.nc"); try "day,infected\n1,0.1\n".write(toFile: text, atomically: true, encoding: .utf8)
        let hdf5 = path("hdf5.nc")
        FileManager.default.createFile(atPath: hdf5, contents: Data([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a] + [UInt8](repeating: 7, count: 4000)))
        let whole = try Data(contentsOf: URL(fileURLWithPath: try ncgen(good, "whole", kind: "classic")))
        let truncated = path("truncated.nc"); FileManager.default.createFile(atPath: truncated, contents: whole.prefix(whole.count / 2))
        cases += [("empty", empty, ": empty"), ("text", text, ": not a NetCDF file"),
                  ("hdf5", hdf5, "HDF5"), ("truncated", truncated, "truncated or damaged")]
        XCTAssertGreaterThanOrEqual(cases.count, 19)
        for (name, file, expected) in cases {
            let r = try CLI.run(["process", file, "--model", "sird=\(Self.sirdModel)", "--outbox", out, "--threads", "1"])
            XCTAssertEqual(r.status, 65, "\(name): \(r.stderr)")
            XCTAssertEqual(outputs(name, in: out), [".error.json"], name)
            guard let err = try? json(out + "/\(name).error.json") else { XCTFail("\(name): no error.json"); continue }
            XCTAssertEqual(err["code"] as? String, "badInput", name)
            XCTAssertEqual(err["exit_status"] as? Int, 65, name)
            let message = err["message"] as? String ?? ""
            XCTAssert(message.contains(expected), "\(name): \"\(expected)\" not in \"\(message)\"")
            XCTAssert(message.contains(name + ".nc"), "\(name): the message does not name the file: \(message)")
            XCTAssertFalse((err["what_to_do"] as? String ?? "").isEmpty, "\(name): no advice")
            XCTAssert(r.stderr.contains(expected), "\(name): stderr \(r.stderr)")
        }
        // nothing else was left in the outbox (no temporary files either)
        let left = try FileManager.default.contentsOfDirectory(atPath: out)
        XCTAssertEqual(left.count, cases.count, "\(left.sorted())")
    }

    /// Values never written read as netCDF's default fill: missing, like an explicit _FillValue. A
    /// series of one enormous value still gives a report (the plots' axes cope) with a warning.
    func testDefaultFillIsMissingAndExtremeValuesAreReported() throws {
        let out = path("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let file = try ncgen("""
        netcdf extreme {
        dimensions:
          t = 4 ; u = 1 ;
        variables:
          double t(t) ; t:units = "days" ;
          double infected(t) ;
          double u(u) ; u:units = "days" ;
          double dead(u) ;
        // global attributes:
          :sbiwatch_model = "sird" ;
        data:
          t = 1, 2, 3, 4 ;
          infected = 0.1, _, 0.3, 0.4 ;
          u = 5 ;
          dead = 3e3 ;
        }
        """, "extreme")
        let r = try CLI.run(["process", file, "--model", "sird=\(Self.sirdModel)", "--outbox", out, "--samples", "4"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try json(out + "/extreme.report.json")
        let series = ((report["observed"] as! [String: Any])["series"] as! [String: Any])
        XCTAssertEqual((series["infected"] as! [String: Any])["time"] as! [Double], [1, 3, 4])
        let warnings = (report["diagnostics"] as! [String: Any])["warnings"] as! [String]
        XCTAssert(warnings.contains { $0.contains("dead at time 5") && $0.contains("standard deviations") }, "\(warnings)")
        let html = try String(contentsOfFile: out + "/extreme.report.html", encoding: .utf8)
        XCTAssert(html.contains("aria-label=\"dead (observed)\""))
    }

    func testModelConfiguration() throws {
        let obs = path("x.nc")
        XCTAssertEqual(try CLI.run(["simulate", "--task", "sird", "--out", obs]).status, 0)
        // no model flag and nothing on the search path (an empty working folder and user config)
        let none = try CLI.run(["process", obs], environment: ["SBIWATCH_MODELS": "", "XDG_CONFIG_HOME": path("xdg")], cwd: dir)
        XCTAssertEqual(none.status, 78)
        XCTAssert(none.stderr.contains("no model given"), none.stderr)
        let wrongPin = try CLI.run(["process", obs, "--model", Self.sirdModel + "@sha256:" + String(repeating: "0", count: 64)])
        XCTAssertEqual(wrongPin.status, 78, wrongPin.stderr)
        XCTAssert(wrongPin.stderr.contains("the pin asks for"), wrongPin.stderr)
        // a models file with two models: the file's sbiwatch_model picks one
        let config = path("models.conf")
        try "# pinned models\nsird = \(Self.sirdModel)\nother=\(Self.sirdModel)\n".write(toFile: config, atomically: true, encoding: .utf8)
        XCTAssert(FileManager.default.fileExists(atPath: path("x.error.json")), "the failed attempt left no error report")
        let r = try CLI.run(["process", obs, "--config", config, "--samples", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("x.error.json")), "a success must replace the earlier error report")
    }

    /// The report of the shipped gaussian-linear model for a fixed file and seed, against
    /// fixtures/golden/report-gaussian-linear.json: the same keys and values within 0.02 (OpenBLAS
    /// picks different kernels on different CPUs, so the last digits may move).
    func testReportSnapshot() throws {
        let obs = path("gl.nc")
        XCTAssertEqual(try CLI.run(["simulate", "--task", "gaussian_linear", "--model-name", "gaussian-linear", "--seed", "11", "--out", obs]).status, 0)
        let out = path("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let pins = CLI.repository.appendingPathComponent("fixtures/models/PINS").path
        let r = try CLI.run(["process", obs, "--config", pins, "--outbox", out, "--samples", "500", "--seed", "1"],
                            environment: ["SOURCE_DATE_EPOCH": "1764000000"])
        XCTAssertEqual(r.status, 0, r.stderr)
        var report = try json(out + "/gl.report.json")
        report["timings_seconds"] = nil
        // the models file is recorded as given (a path of this checkout)
        var model = report["model"] as! [String: Any]
        XCTAssertEqual(model.removeValue(forKey: "models_file") as? String, pins)
        report["model"] = model
        let golden = CLI.repository.appendingPathComponent("fixtures/golden/report-gaussian-linear.json")
        if ProcessInfo.processInfo.environment["SBIWATCH_UPDATE_GOLDEN"] == "1" {
            try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys]).write(to: golden)
            return
        }
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: golden))
        assertClose(report, expected, at: "report")
        // the shipped model is calibrated, so a file of its own simulator is trusted
        let diagnostics = report["diagnostics"] as! [String: Any]
        XCTAssertEqual(diagnostics["verdict"] as? String, "ok", "\(diagnostics)")
        XCTAssertEqual((diagnostics["checks"] as! [[String: Any]]).map { $0["name"] as! String }, ["out_of_distribution", "posterior_predictive:x"])
        // sampled as its calibration pass was, so the smallest p-value is ranked among the held-out cases'
        XCTAssertEqual(diagnostics["combination"] as? String, "held_out", "\(diagnostics)")
        // and the posterior is right: mean x/2 and sd sqrt(0.05) per coordinate
        let x = ((report["observed"] as! [String: Any])["scalars"] as! [String: Double])
        let parameters = report["parameters"] as! [String: [String: Any]]
        for i in 0..<10 {
            let s = parameters["theta[\(i)]"]!
            XCTAssertEqual(s["mean"] as! Double, x["x[\(i)]"]! / 2, accuracy: 0.05, "theta[\(i)]")
            XCTAssertEqual(s["sd"] as! Double, 0.05.squareRoot(), accuracy: 0.03, "theta[\(i)]")
            XCTAssertEqual(s["contraction"] as! Double, 0.5, accuracy: 0.25, "theta[\(i)]: posterior variance 0.05 against the prior's 0.1")
        }
    }

    func assertClose(_ a: Any, _ b: Any, at path: String) {
        switch (a, b) {
        case let (x as [String: Any], y as [String: Any]):
            XCTAssertEqual(Set(x.keys), Set(y.keys), path)
            for (k, v) in x { if let w = y[k] { assertClose(v, w, at: path + "." + k) } }
        case let (x as [Any], y as [Any]):
            XCTAssertEqual(x.count, y.count, path)
            for (i, (v, w)) in zip(x, y).enumerated() { assertClose(v, w, at: "\(path)[\(i)]") }
        case let (x as NSNumber, y as NSNumber) where path.contains("diagnostics") || path.contains("posterior_predictive"):
            // checks and replicates are counts over 100 predictive draws: one draw more or less moves them a step
            XCTAssertEqual(x.doubleValue, y.doubleValue, accuracy: max(0.1, 0.1 * abs(y.doubleValue)), path)
        case let (x as NSNumber, y as NSNumber):
            XCTAssertEqual(x.doubleValue, y.doubleValue, accuracy: max(0.02, 0.02 * abs(y.doubleValue)), path)
        case let (x as String, y as String) where path.contains("diagnostics"):
            // the checks' words quote their p-values; those may move like any number
            let digits = { (s: String) in s.replacingOccurrences(of: "[0-9.e-]+[0-9]", with: "N", options: .regularExpression) }
            XCTAssertEqual(digits(x), digits(y), path)
        case let (x as String, y as String):
            XCTAssertEqual(x, y, path)
        default:
            XCTAssertEqual("\(a)", "\(b)", path)
        }
    }
}

/// Runs a system tool (ncdump, ncgen).
enum Tool {
    static func run(_ executable: String, _ args: [String], environment: [String: String] = [:], cwd: URL? = nil,
                    timeout: TimeInterval = 900) throws -> RunResult {
        try CLI.run(args, environment: environment, cwd: cwd, executable: URL(fileURLWithPath: executable), timeout: timeout)
    }
}
