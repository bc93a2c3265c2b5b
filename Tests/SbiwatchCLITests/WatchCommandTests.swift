import Foundation
import XCTest
import SbiTestSupport

/// The daemon and cron modes through the real binary, on real folders, with real signals.
final class WatchCommandTests: SpoolTestCase {
    func testTwentyMixedFilesWhileRunning() throws {
        let daemon = try Background(watchArguments(["--jobs", "2"]))
        var good: [String] = [], bad: [String] = []
        for k in 0..<15 {
            let f = try staged("region-\(k).nc", seed: k)
            try drop(f); good.append("region-\(k)")
        }
        let junk: [(String, Data)] = [("notes.nc", Data("not netcdf\n".utf8)), ("empty.nc", Data()),
                                      ("hdf5.nc", Data([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a] + [UInt8](repeating: 1, count: 100))),
                                      ("cut.nc", try Data(contentsOf: URL(fileURLWithPath: try staged("whole.nc", seed: 1))).prefix(900)),
                                      ("table.csv", Data("day,infected\n1,0.1\n".utf8))]
        for (name, data) in junk {
            let p = path("staging/" + name)
            FileManager.default.createFile(atPath: p, contents: data)
            try drop(p); bad.append(Pipeline.stem(name))
        }
        // files being written under temporary names are left alone
        for name in [".region-99.nc", "upload.nc.part", "draft.nc~", "export.tmp"] {
            FileManager.default.createFile(atPath: inbox + "/" + name, contents: Data("partial".utf8))
        }
        waitFor("all 20 files to be done or failed") { names(state + "/done").count + names(state + "/failed").count == 20 }
        daemon.terminate()
        XCTAssertEqual(daemon.wait(), 0, daemon.stderr)
        XCTAssertEqual(names(inbox), ["draft.nc~", "export.tmp", "upload.nc.part"], "only the temporary files stay in the inbox")
        XCTAssert(FileManager.default.fileExists(atPath: inbox + "/.region-99.nc"))
        XCTAssertEqual(names(state + "/done").count, 15)
        XCTAssertEqual(names(state + "/failed").count, 5)
        XCTAssertEqual(names(state + "/processing"), [])
        var expected: [String] = []
        for g in good { expected += [g + ".report.html", g + ".report.json", g + ".samples.nc"] }
        for b in bad { expected.append(b + ".error.json") }
        XCTAssertEqual(names(outbox), expected.sorted(), "each good file once with its three outputs, each bad one with its error")
        XCTAssertEqual(hidden(outbox), [], "temporary files left in the outbox")
        XCTAssert(daemon.stderr.contains("done") && daemon.stderr.contains("file=region-3.nc"), daemon.stderr)
        // each done line carries the report's verdict, for grep
        let done = daemon.stderr.split(separator: "\n").filter { $0.contains(" done ") || $0.contains("outcome=done") }
        XCTAssertFalse(done.isEmpty, daemon.stderr)
        XCTAssert(done.allSatisfy { $0.range(of: "verdict=(ok|caution|unreliable)", options: .regularExpression) != nil }, daemon.stderr)
    }

    func testSlowWriterIsNotTakenBeforeItIsComplete() throws {
        let daemon = try Background(watchArguments(["--settle", "1.0"]))
        let data = try Data(contentsOf: URL(fileURLWithPath: try staged("slow.nc", seed: 4)))
        let target = inbox + "/slow.nc"
        FileManager.default.createFile(atPath: target, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: target))
        let chunk = data.count / 6 + 1
        for start in stride(from: 0, to: data.count, by: chunk) {
            handle.write(data[start..<min(start + chunk, data.count)])
            usleep(400_000)
            XCTAssertEqual(claimed() + names(state + "/done") + names(state + "/failed"), [],
                           "taken after \(start + chunk) of \(data.count) bytes")
        }
        try handle.close()
        waitFor("the slow file to be done") { names(state + "/done") == ["slow.nc"] }
        daemon.terminate()
        XCTAssertEqual(daemon.wait(), 0, daemon.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: outbox + "/slow.report.json"))) as! [String: Any]
        let sha = try CLI.sha256(ofFile: state + "/done/slow.nc")
        XCTAssertEqual((report["input"] as! [String: Any])["sha256"] as? String, sha, "the report is not of the complete file")
    }

    func testKillNineAtRandomPointsLosesNothing() throws {
        var stems: [String] = []
        for k in 0..<6 { try drop(try staged("site-\(k).nc", seed: 20 + k)); stems.append("site-\(k)") }
        var generator = SystemRandomNumberGenerator()
        var killedMidFile = 0
        var finishedEarly: [String] = []
        for round in 0..<10 {
            // a file takes about 1.5 s here, so kills land before, during and between files
            let daemon = try Background(watchArguments(["--jobs", "2", "--max-attempts", "100", "--samples", "200"]))
            if round % 2 == 0 {
                // half the kills aim at a file in processing
                waitFor("a file to be taken", timeout: 30) { !claimed().isEmpty || names(inbox).isEmpty }
                usleep(UInt32.random(in: 0...500_000, using: &generator))
            } else if round == 1 {
                // one run lasts until a file is finished (however loaded the machine), so work goes on between kills
                waitFor("a file to be finished", timeout: 120) { !names(state + "/done").isEmpty }
                finishedEarly = names(state + "/done")
                usleep(UInt32.random(in: 0...1_000_000, using: &generator))
            } else {
                usleep(UInt32.random(in: 300_000...4_000_000, using: &generator))
            }
            if !claimed().isEmpty { killedMidFile += 1 }
            daemon.kill9()
            _ = daemon.wait()
            XCTAssertEqual(names(outbox).filter { $0.hasSuffix(".error.json") }, [], "round \(round): \(daemon.stderr)")
        }
        // the kills hit files in the middle of their processing
        XCTAssertGreaterThanOrEqual(killedMidFile, 3, "too few kills landed while a file was being processed")
        // what was finished before the later kills stays finished: not taken again, not lost
        XCTAssert(Set(finishedEarly).isSubset(of: names(state + "/done")), "finished files were taken again")
        let final = try CLI.run(["--once"] + watchArguments(["--max-attempts", "100", "--samples", "200"]))
        XCTAssertEqual(final.status, 0, final.stderr)
        XCTAssertEqual(names(state + "/done"), stems.map { $0 + ".nc" })
        XCTAssertEqual(names(state + "/processing"), [])
        XCTAssertEqual(names(inbox), [])
        var expected: [String] = []
        for s in stems { expected += [s + ".report.html", s + ".report.json", s + ".samples.nc"] }
        XCTAssertEqual(names(outbox), expected.sorted(), "outputs missing or duplicated")
        XCTAssertEqual(hidden(outbox), [], "temporary files left in the outbox")
        for s in stems {
            let header = try Tool.run("/usr/bin/ncdump", ["-h", outbox + "/" + s + ".samples.nc"])
            XCTAssertEqual(header.status, 0, "\(s).samples.nc is not readable: \(header.stderr)")
            XCTAssert(header.stdout.contains("sample = 200 ;"), header.stdout)
        }
    }

    func testOutboxInsideTheSpoolIsRefused() throws {
        for bad in [inbox, state + "/out"] {
            try FileManager.default.createDirectory(atPath: bad, withIntermediateDirectories: true)
            let r = try CLI.run(["--inbox", inbox, "--outbox", bad, "--model", TinyModels.sird, "--once"])
            XCTAssertEqual(r.status, 78, r.stderr)
            XCTAssert(r.stderr.contains("outputs would be taken as inputs"), r.stderr)
        }
    }

    /// A daemon of an earlier, single-worker version holds STATE/lock exclusively: workers of this
    /// version refuse to share the inbox with it, naming it (flock taken here, as that daemon did).
    func testEarlierSingleWorkerDaemonIsRespected() throws {
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let fd = open(state + "/lock", O_RDWR | O_CREAT, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        XCTAssertEqual(flock(fd, LOCK_EX | LOCK_NB), 0)
        _ = "4242\n".withCString { write(fd, $0, 5) }
        let refused = try CLI.run(watchArguments(["--once"]))
        XCTAssertEqual(refused.status, 75, refused.stderr)
        XCTAssert(refused.stderr.contains("earlier, single-worker version (pid 4242)"), refused.stderr)
        flock(fd, LOCK_UN)
        try drop(try staged("after.nc", seed: 12))
        let ran = try CLI.run(watchArguments(["--once"]))
        XCTAssertEqual(ran.status, 0, ran.stderr)
        XCTAssertEqual(names(state + "/done"), ["after.nc"])
        XCTAssertEqual(names(state + "/processing"), [], "the worker's claim folder is removed at exit")
        XCTAssertEqual(names(state + "/workers") + hidden(state + "/workers"), [], "the lease is removed at exit")
    }

    func testSigtermFinishesTheCurrentFile() throws {
        let daemon = try Background(watchArguments(["--samples", "1500", "--jobs", "1", "--shutdown-grace", "120"]))
        try drop(try staged("busy.nc", seed: 8))
        waitFor("the file to be taken", timeout: 60) { claimed() == ["busy.nc"] }
        daemon.terminate()
        XCTAssertEqual(daemon.wait(), 0, daemon.stderr)
        XCTAssertEqual(names(state + "/done"), ["busy.nc"])
        XCTAssertEqual(names(outbox), ["busy.report.html", "busy.report.json", "busy.samples.nc"])
        XCTAssertEqual(hidden(outbox), [])
    }

    func testSigtermAbandonsCleanlyAfterTheGracePeriod() throws {
        let daemon = try Background(watchArguments(["--samples", "100000", "--jobs", "1", "--shutdown-grace", "0.5"]))
        try drop(try staged("long.nc", seed: 9))
        waitFor("the file to be taken", timeout: 60) { claimed() == ["long.nc"] }
        usleep(300_000)
        daemon.terminate()
        XCTAssertEqual(daemon.wait(), 0, daemon.stderr)
        XCTAssertEqual(names(inbox), ["long.nc"], "the abandoned file is not back in the inbox")
        XCTAssertEqual(names(state + "/processing"), [])
        XCTAssertEqual(names(outbox), [], "partial outputs")
        XCTAssertEqual(hidden(outbox), [], "temporary files left in the outbox")
        XCTAssert(daemon.stderr.contains("abandoned"), daemon.stderr)
    }

    func testOnceExitCodesAndSummary() throws {
        let empty = try CLI.run(watchArguments(["--once"]))
        XCTAssertEqual(empty.status, 0, empty.stderr)
        XCTAssert(empty.stderr.contains("sbiwatch: processed 0, failed 0, skipped 0 in"), empty.stderr)
        try drop(try staged("a.nc", seed: 1)); try drop(try staged("b.nc", seed: 2))
        let good = try CLI.run(watchArguments(["--once", "--log-format", "json"]))
        XCTAssertEqual(good.status, 0, good.stderr)
        XCTAssert(good.stderr.contains("processed 2, failed 0, skipped 0"), good.stderr)
        // one JSON object per event line, with the file, model, outcome and duration of each file
        let events = good.stderr.split(separator: "\n").filter { $0.hasPrefix("{") }.map {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String]
        }
        XCTAssert(events.allSatisfy { $0 != nil }, good.stderr)
        let done = events.compactMap { $0 }.filter { $0["event"] == "done" }
        XCTAssertEqual(done.compactMap { $0["file"] }.sorted(), ["a.nc", "b.nc"])
        XCTAssert(done.allSatisfy { $0["model"] == "sird" && $0["outcome"] == "done" && $0["duration"] != nil }, "\(done)")
        FileManager.default.createFile(atPath: inbox + "/c.nc", contents: Data("oops".utf8))
        try drop(try staged("d.nc", seed: 3))
        let mixed = try CLI.run(watchArguments(["--once"]))
        XCTAssertEqual(mixed.status, 65, mixed.stderr)
        XCTAssert(mixed.stderr.contains("processed 1, failed 1, skipped 0"), mixed.stderr)
        let err = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: outbox + "/c.error.json"))) as! [String: Any]
        XCTAssertEqual(err["message"] as? String, "c.nc: not a NetCDF file")
        XCTAssertEqual(names(state + "/failed"), ["c.nc"])
    }

    func testPoisonFileGoesToFailedInsteadOfLooping() throws {
        try FileManager.default.createDirectory(atPath: state + "/processing", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: state + "/attempts", withIntermediateDirectories: true)
        XCTAssertEqual(rename(try staged("poison.nc", seed: 5), state + "/processing/poison.nc"), 0)
        try "3\n".write(toFile: state + "/attempts/poison.nc", atomically: true, encoding: .utf8)
        XCTAssertEqual(rename(try staged("fine.nc", seed: 6), state + "/processing/fine.nc"), 0)   // crashed once: taken again
        try "1\n".write(toFile: state + "/attempts/fine.nc", atomically: true, encoding: .utf8)
        let r = try CLI.run(watchArguments(["--once", "--max-attempts", "3"]))
        XCTAssertEqual(r.status, 65, r.stderr)
        XCTAssertEqual(names(state + "/failed"), ["poison.nc"])
        XCTAssertEqual(names(state + "/done"), ["fine.nc"])
        let err = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: outbox + "/poison.error.json"))) as! [String: Any]
        XCTAssert((err["message"] as? String ?? "").contains("stopped 3 times"), "\(err)")
        XCTAssertEqual(names(state + "/attempts"), [])
    }

    func testNameClashesNeverOverwrite() throws {
        // outputs of another input named like the new one are already in the outbox
        let other = try staged("clash.nc", seed: 30)
        XCTAssertEqual(try CLI.run(["process", other, "--model", TinyModels.sird, "--outbox", outbox, "--samples", "3"]).status, 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: outbox + "/clash.report.json"))
        try drop(try staged("clash.nc", seed: 31))
        let r = try CLI.run(watchArguments(["--once"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: outbox + "/clash.report.json")), before, "overwritten")
        XCTAssert(FileManager.default.fileExists(atPath: outbox + "/clash.1.samples.nc"), "\(names(outbox))")
        XCTAssert(r.stderr.contains("name clash"), r.stderr)
    }

    func testSighupReloadsTheModels() throws {
        let config = path("models.conf")
        try "sird=\(TinyModels.sird)\n".write(toFile: config, atomically: true, encoding: .utf8)
        let daemon = try Background(["--inbox", inbox, "--outbox", outbox, "--config", config, "--samples", "3", "--settle", "0.3"])
        waitFor("the daemon to start", timeout: 30) { daemon.stderr.contains("start") }
        try "measles=\(TinyModels.sird)\n".write(toFile: config, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        waitFor("the reload", timeout: 30) { daemon.stderr.contains("reloaded models") }
        try drop(try staged("m.nc", seed: 2, model: "measles"))
        waitFor("the file under the new name to be done") { names(state + "/done") == ["m.nc"] }
        daemon.terminate()
        XCTAssertEqual(daemon.wait(), 0, daemon.stderr)
    }
}

/// `sbiwatch` running in the background, its stderr collected.
final class Background: @unchecked Sendable {
    let process = Process()
    private let err = PipeCollector()

    /// `environment` is added to this process's own (e.g. SBIWATCH_HOST to simulate a host).
    init(_ args: [String], environment: [String: String] = [:]) throws {
        process.executableURL = CLI.binary
        process.arguments = args
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.standardError = err.pipe
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        err.start()
    }

    var pid: Int32 { process.processIdentifier }
    /// What the process wrote to stderr so far.
    var stderr: String { err.text(waiting: 0) }
    func terminate() { kill(pid, SIGTERM) }
    func kill9() { kill(pid, SIGKILL) }
    func signal(_ s: Int32) { kill(pid, s) }

    /// Waits for the exit and returns the status. A process still running after `timeout` seconds
    /// is killed (the test fails with its stderr rather than hanging the suite).
    func wait(timeout: TimeInterval = 600) -> Int32 {
        if !CLI.waitForExit(process, timeout: timeout) {
            XCTFail("sbiwatch \(process.arguments ?? []) still ran after \(Int(timeout)) s; killed. stderr: \(stderr)")
            kill9()
            process.waitUntilExit()
        }
        _ = err.text(waiting: 5)  // the rest of its stderr, unless a child it left holds the pipe
        return process.terminationStatus
    }
}
