import Foundation
import SbiTestSupport
import XCTest

/// `make install` into a temporary PREFIX under DESTDIR (this build's binary), then the mission's
/// commands from a fresh working folder with no model flags: the installed binary finds the
/// installed models relative to itself.
final class InstallTests: TemporaryDirectoryTestCase {
    let prefix = "/opt/sbiwatch-install-test"

    func make(_ target: String, destdir: String) throws -> RunResult {
        try Tool.run("/usr/bin/make", ["-s", "-C", CLI.repository.path, target, "PREFIX=\(prefix)", "DESTDIR=\(destdir)",
                                       "BINARY=\(CLI.binary.path)"])
    }

    /// The shipped fixture files, asking for 40 samples each (their sbiwatch_samples attribute) so the run is short.
    func copyFixtures(into folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for stem in ["region-17_2026-11-21", "pond-3_2026-11-21", "neuron-7_2026-11-21"] {
            let cdl = try String(contentsOf: CLI.repository.appendingPathComponent("fixtures/inbox/\(stem).cdl"), encoding: .utf8)
            let fewer = cdl.replacingOccurrences(of: "// global attributes:\n", with: "// global attributes:\n\t\t:sbiwatch_samples = 40 ;\n")
            XCTAssertNotEqual(fewer, cdl)
            let cdlPath = path(stem + ".cdl")
            try fewer.write(toFile: cdlPath, atomically: true, encoding: .utf8)
            let r = try Tool.run("/usr/bin/ncgen", ["-k", "nc4", "-o", folder + "/" + stem + ".nc", cdlPath])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
    }

    func testInstallRunUninstall() throws {
        let destdir = path("stage"), root = destdir + prefix
        let installed = try make("install", destdir: destdir)
        XCTAssertEqual(installed.status, 0, installed.stderr)
        let files = ["bin/sbiwatch", "share/man/man1/sbiwatch.1", "share/bash-completion/completions/sbiwatch",
                     "share/zsh/site-functions/_sbiwatch", "share/fish/vendor_completions.d/sbiwatch.fish",
                     "share/sbiwatch/models/models", "share/sbiwatch/models/sird.sbim",
                     "share/sbiwatch/models/lotka-volterra.sbim", "share/sbiwatch/models/gaussian-linear.sbim",
                     "share/sbiwatch/models/hodgkin-huxley.sbim"]
        for f in files { XCTAssert(FileManager.default.fileExists(atPath: root + "/" + f), "\(f) not installed") }
        let sbiwatch = root + "/bin/sbiwatch"
        let work = dir.appendingPathComponent("work")
        try copyFixtures(into: work.path + "/data/in")
        try FileManager.default.createDirectory(atPath: work.path + "/data/out", withIntermediateDirectories: true)
        let env = ["SBIWATCH_MODELS": "", "XDG_CONFIG_HOME": path("xdg")]

        let watch = try Tool.run(sbiwatch, ["--inbox", "data/in", "--outbox", "data/out", "--once"], environment: env, cwd: work)
        XCTAssertEqual(watch.status, 0, watch.stderr)
        XCTAssert(watch.stderr.contains("models_file=\(root)/share/sbiwatch/models/models"), "the daemon logs the models file: \(watch.stderr)")
        for stem in ["region-17_2026-11-21", "pond-3_2026-11-21", "neuron-7_2026-11-21"] {
            let report = try JSONSerialization.jsonObject(with: Data(contentsOf: work.appendingPathComponent("data/out/\(stem).report.json"))) as! [String: Any]
            let model = report["model"] as! [String: Any]
            XCTAssertEqual(model["models_file"] as? String, root + "/share/sbiwatch/models/models", stem)
            XCTAssertEqual((report["sampler"] as! [String: Any])["samples"] as? Int, 40, stem)
        }

        try copyFixtures(into: work.path + "/one")
        let one = try Tool.run(sbiwatch, ["process", "one/pond-3_2026-11-21.nc"], environment: env, cwd: work)
        XCTAssertEqual(one.status, 0, one.stderr)
        XCTAssert(FileManager.default.fileExists(atPath: work.path + "/one/pond-3_2026-11-21.report.json"))

        let man = try Tool.run("/usr/bin/man", ["-l", root + "/share/man/man1/sbiwatch.1"], environment: ["MANPAGER": "cat", "MANWIDTH": "80"])
        XCTAssertEqual(man.status, 0, man.stderr)
        XCTAssert(man.stdout.contains("sbiwatch") && man.stdout.contains("OBSERVATION FILES"), String(man.stdout.prefix(400)))

        let completion = root + "/share/bash-completion/completions/sbiwatch"
        let bash = try Tool.run("/bin/bash", ["-c", "source '\(completion)' && complete -p sbiwatch"])
        XCTAssertEqual(bash.status, 0, bash.stderr)
        XCTAssert(bash.stdout.contains("sbiwatch"), bash.stdout)

        let removed = try make("uninstall", destdir: destdir)
        XCTAssertEqual(removed.status, 0, removed.stderr)
        for f in files { XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/" + f), "\(f) left after uninstall") }
    }
}
