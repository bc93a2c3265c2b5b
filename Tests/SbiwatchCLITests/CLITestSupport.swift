import Foundation
import XCTest
import SbiTestSupport

/// Result of running the real `sbiwatch` binary.
struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

enum CLI {
    /// The binary built next to the test bundle (.build/<config>/sbiwatch).
    static var binary: URL { RepositoryPaths.builtBinary }

    /// The repository root (holds Package.swift).
    static var repository: URL { RepositoryPaths.root }

    /// Runs the built binary (or `executable`) with the test's environment plus `environment`.
    @discardableResult
    static func run(_ args: [String], environment: [String: String] = [:], cwd: URL? = nil, executable: URL? = nil) throws -> RunResult {
        let p = Process()
        p.executableURL = executable ?? binary
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["COLUMNS"] = "80"
        for (k, v) in environment { env[k] = v }
        p.environment = env
        if let cwd { p.currentDirectoryURL = cwd }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        // read both pipes fully before waiting, so a chatty child cannot block on a full pipe
        final class Box: @unchecked Sendable { var data = Data() }
        let errBox = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errBox.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        let errData = errBox.data
        p.waitUntilExit()
        return RunResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Compares `text` with fixtures/golden/NAME; SBIWATCH_UPDATE_GOLDEN=1 rewrites the file instead.
    static func assertGolden(_ text: String, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let url = repository.appendingPathComponent("fixtures/golden").appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["SBIWATCH_UPDATE_GOLDEN"] == "1" {
            try text.write(to: url, atomically: true, encoding: .utf8)
            return
        }
        let golden = try String(contentsOf: url, encoding: .utf8)
        XCTAssertEqual(text, golden, "output differs from \(url.path); rerun with SBIWATCH_UPDATE_GOLDEN=1 if intended",
                       file: file, line: line)
    }
}

extension CLI {
    /// SHA-256 of a file, by sha256sum.
    static func sha256(ofFile path: String) throws -> String {
        let r = try Tool.run("/usr/bin/sha256sum", [path])
        return String(r.stdout.prefix(64))
    }
}

/// The output stem of an input name (its name without .nc), as the pipeline makes it.
enum Pipeline {
    static func stem(_ name: String) -> String { name.hasSuffix(".nc") ? String(name.dropLast(3)) : name }
}

/// Models trained once per test run through the real binary, in a temporary folder.
enum TinyModels {
    static let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sbiwatch-tiny-models-\(getpid())")

    /// SIRD, 3 training steps, 5 sampling steps: fast, and wrong, which suits tests of the plumbing.
    static let sird: String = {
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("sird.sbim").path
        let r = try? CLI.run(["train", "--task", "sird", "--budget", "100", "--steps", "3", "--batch-size", "8",
                              "--sampler-steps", "5", "--calibration-cases", "20", "--out", path])
        precondition(r?.status == 0, "training the tiny SIRD model failed: \(r?.stderr ?? "")")
        return path
    }()
}
