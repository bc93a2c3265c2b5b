import Foundation
import XCTest
import SbiTestSupport

/// Result of running the real `sbiwatch` binary.
struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// A child that outlived its time limit (the test fails instead of hanging the suite).
struct ChildTimeout: Error, CustomStringConvertible {
    var command: String
    var seconds: Double
    var stderr: String
    var description: String { "`\(command)` still ran after \(Int(seconds)) s and was killed; its stderr: \(stderr)" }
}

/// Reads a pipe on a thread of its own as data arrives, so the child never blocks on a full pipe
/// and what was read is there even when the pipe never reaches EOF.
final class PipeCollector: @unchecked Sendable {
    let pipe = Pipe()
    private let lock = NSLock()
    private var data = Data()
    private let finished = DispatchSemaphore(value: 0)

    func start() {
        DispatchQueue.global().async { [self] in
            while true {
                let d = pipe.fileHandleForReading.availableData
                if d.isEmpty { break }
                lock.lock(); data.append(d); lock.unlock()
            }
            finished.signal()
        }
    }

    /// What was read, after waiting up to `seconds` for EOF.
    func text(waiting seconds: Double) -> String {
        if finished.wait(timeout: .now() + seconds) == .success { finished.signal() }
        lock.lock(); defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }
}

enum CLI {
    /// The binary built next to the test bundle (.build/<config>/sbiwatch).
    static var binary: URL { RepositoryPaths.builtBinary }

    /// The repository root (holds Package.swift).
    static var repository: URL { RepositoryPaths.root }

    /// Runs the built binary (or `executable`) with the test's environment plus `environment`.
    /// Never hangs the suite: a child still running after `timeout` seconds is killed and the call
    /// throws, and once the child has exited its pipes are read for at most 5 s more, so a daemon it
    /// left behind holding them (munged keeps its inherited stderr) cannot block the test.
    @discardableResult
    static func run(_ args: [String], environment: [String: String] = [:], cwd: URL? = nil, executable: URL? = nil,
                    timeout: TimeInterval = 900) throws -> RunResult {
        let p = Process()
        p.executableURL = executable ?? binary
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["COLUMNS"] = "80"
        for (k, v) in environment { env[k] = v }
        p.environment = env
        if let cwd { p.currentDirectoryURL = cwd }
        let out = PipeCollector(), err = PipeCollector()
        p.standardOutput = out.pipe; p.standardError = err.pipe
        try p.run()
        out.start(); err.start()
        let name = ([p.executableURL?.lastPathComponent ?? "?"] + args).joined(separator: " ")
        guard waitForExit(p, timeout: timeout) else {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            throw ChildTimeout(command: name, seconds: timeout, stderr: err.text(waiting: 1))
        }
        return RunResult(status: p.terminationStatus, stdout: out.text(waiting: 5), stderr: err.text(waiting: 5))
    }

    /// Polls until the process has exited; false after `timeout` seconds.
    static func waitForExit(_ p: Process, timeout: TimeInterval) -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while p.isRunning {
            if Date() > end { return false }
            usleep(20_000)
        }
        p.waitUntilExit()
        return true
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

extension TemporaryDirectoryTestCase {
    /// NAME.nc in the test's folder, written by ncgen from CDL text.
    func ncgen(_ cdl: String, _ name: String, kind: String = "nc4") throws -> String {
        let cdlPath = path(name + ".cdl"), out = path(name + ".nc")
        try cdl.write(toFile: cdlPath, atomically: true, encoding: .utf8)
        let r = try Tool.run("/usr/bin/ncgen", ["-k", kind, "-o", out, cdlPath])
        XCTAssertEqual(r.status, 0, "ncgen: \(r.stderr)")
        return out
    }
}
