import Foundation
import SbiTestSupport
import XCTest

/// The models search path, step by step, with the real binary: each step is used when the earlier
/// ones are absent, a later step is never tried when an earlier file is broken (exit 78 naming it),
/// and with nothing on the path the error lists every place tried.
final class ModelSearchPathTests: TemporaryDirectoryTestCase {
    var work: URL { dir.appendingPathComponent("work") }
    var xdg: String { path("xdg") }

    override func setUpWithError() throws {
        try super.setUpWithError()
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }

    /// A models file naming the shipped gaussian-linear archive by absolute path, pinned.
    func goodModelsFile(_ file: String, name: String = "gl") throws {
        let archive = CLI.repository.appendingPathComponent("fixtures/models/gaussian-linear.sbim").path
        let sha = try CLI.sha256(ofFile: archive)
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: file).deletingLastPathComponent().path,
                                                withIntermediateDirectories: true)
        // CRLF line ends, as a models file edited on Windows has them
        try Data("# test models\r\n\(name)=\(archive)@sha256:\(sha)\r\n".utf8).write(to: URL(fileURLWithPath: file))
    }

    /// A models file with a malformed pin.
    func brokenModelsFile(_ file: String) throws {
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: file).deletingLastPathComponent().path,
                                                withIntermediateDirectories: true)
        try Data("gl=gaussian-linear.sbim@sha256:1234\n".utf8).write(to: URL(fileURLWithPath: file))
    }

    /// `sbiwatch models --json` from the work folder with the given environment (no SBIWATCH_MODELS
    /// unless given, HOME and XDG_CONFIG_HOME inside the test folder).
    func models(_ env: [String: String] = [:], binary: URL? = nil) throws -> RunResult {
        var environment = ["SBIWATCH_MODELS": "", "HOME": path("home"), "XDG_CONFIG_HOME": xdg]
        for (k, v) in env { environment[k] = v }
        guard let binary else { return try CLI.run(["models", "--json"], environment: environment, cwd: work) }
        return try Tool.run(binary.path, ["models", "--json"], environment: environment, cwd: work)
    }

    func chosen(_ r: RunResult, file: StaticString = #filePath, line: UInt = #line) throws -> String? {
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        return o?["models_file"] as? String
    }

    func assertBroken(_ r: RunResult, naming file: String, line: UInt = #line) {
        XCTAssertEqual(r.status, 78, r.stderr, line: line)
        XCTAssert(r.stderr.contains(file), "the error must name \(file): \(r.stderr)", line: line)
    }

    func testEnvironmentVariable() throws {
        let file = path("explicit/models")
        try goodModelsFile(file)
        try goodModelsFile(work.appendingPathComponent("sbiwatch.models").path)
        XCTAssertEqual(try chosen(try models(["SBIWATCH_MODELS": file])), file, "SBIWATCH_MODELS comes first")
        assertBroken(try models(["SBIWATCH_MODELS": path("explicit/missing")]), naming: path("explicit/missing"))
        try brokenModelsFile(file)
        assertBroken(try models(["SBIWATCH_MODELS": file]), naming: file)
    }

    func testWorkingDirectoryFile() throws {
        let file = work.appendingPathComponent("sbiwatch.models").path
        try goodModelsFile(file)
        try goodModelsFile(xdg + "/sbiwatch/models")
        XCTAssertEqual(try chosen(try models()), file, "./sbiwatch.models comes before the user's file")
        try brokenModelsFile(file)
        assertBroken(try models(), naming: file)
    }

    func testUserConfigFile() throws {
        let file = xdg + "/sbiwatch/models"
        try goodModelsFile(file)
        XCTAssertEqual(try chosen(try models()), file)
        try brokenModelsFile(file)
        assertBroken(try models(), naming: file)
        // without XDG_CONFIG_HOME: ~/.config
        let home = path("home") + "/.config/sbiwatch/models"
        try goodModelsFile(home)
        XCTAssertEqual(try chosen(try models(["XDG_CONFIG_HOME": ""])), home)
    }

    /// /etc/sbiwatch/models: only where the test may create it (root) and nothing is there already.
    func testSystemFile() throws {
        let file = "/etc/sbiwatch/models"
        guard getuid() == 0, !FileManager.default.fileExists(atPath: "/etc/sbiwatch") else {
            throw XCTSkip("needs root and no /etc/sbiwatch of the machine's own")
        }
        defer { try? FileManager.default.removeItem(atPath: "/etc/sbiwatch") }
        try goodModelsFile(file)
        XCTAssertEqual(try chosen(try models()), file)
        try brokenModelsFile(file)
        assertBroken(try models(), naming: file)
    }

    /// The models installed beside the binary: PREFIX/bin/sbiwatch finds PREFIX/share/sbiwatch/models/models.
    func testInstalledModels() throws {
        guard !FileManager.default.fileExists(atPath: "/etc/sbiwatch/models") else { throw XCTSkip("/etc/sbiwatch/models comes first here") }
        let prefix = dir.appendingPathComponent("prefix")
        let bin = prefix.appendingPathComponent("bin/sbiwatch")
        try FileManager.default.createDirectory(at: bin.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: CLI.binary, to: bin)
        let file = prefix.appendingPathComponent("share/sbiwatch/models/models").path
        try goodModelsFile(file)
        XCTAssertEqual(try chosen(try models(binary: bin)), file)
        try brokenModelsFile(file)
        assertBroken(try models(binary: bin), naming: file)
    }

    func testNothingOnThePath() throws {
        guard !FileManager.default.fileExists(atPath: "/etc/sbiwatch/models") else { throw XCTSkip("/etc/sbiwatch/models is there") }
        let r = try models()
        XCTAssertEqual(r.status, 78, r.stderr)
        for place in ["sbiwatch.models", xdg + "/sbiwatch/models", "/etc/sbiwatch/models", "share/sbiwatch/models/models"] {
            XCTAssert(r.stderr.contains(place), "the error must list \(place): \(r.stderr)")
        }
    }

    /// `process` with no model flags uses the file found, and its report records which one.
    func testProcessRecordsTheModelsFile() throws {
        let file = work.appendingPathComponent("sbiwatch.models").path
        try goodModelsFile(file, name: "gaussian-linear")
        let obs = work.appendingPathComponent("gl.nc").path
        XCTAssertEqual(try CLI.run(["simulate", "--task", "gaussian_linear", "--model-name", "gaussian-linear", "--seed", "3", "--out", obs]).status, 0)
        let r = try CLI.run(["process", "gl.nc", "--samples", "20", "--steps", "3"],
                            environment: ["SBIWATCH_MODELS": "", "XDG_CONFIG_HOME": xdg], cwd: work)
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: work.appendingPathComponent("gl.report.json"))) as! [String: Any]
        XCTAssertEqual((report["model"] as! [String: Any])["models_file"] as? String, file)
    }
}
