import Foundation
import XCTest
import SbiTestSupport

/// Several workers on simulated hosts (SBIWATCH_HOST) sharing one inbox through the real binary:
/// killed at random and restarted, one paused for less than its lease.
final class SharedSpoolTests: SpoolTestCase {
    /// The first 8 hex digits of this machine's boot id (the BOOT of a worker's HOST.BOOT.PID).
    var bootID: String {
        let text = (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)) ?? ""
        return String(text.filter(\.isHexDigit).prefix(8))
    }

    func workerArguments() -> [String] {
        watchArguments(["--jobs", "1", "--lease", "1", "--rescan", "0.5", "--max-attempts", "100", "--samples", "50"])
    }

    struct Worker {
        var host: String
        var process: Background
        var folder: String
    }

    func startWorker(_ host: String) throws -> Worker {
        let p = try Background(workerArguments(), environment: ["SBIWATCH_HOST": host])
        return Worker(host: host, process: p, folder: state + "/processing/\(host).\(bootID).\(p.pid)")
    }

    /// Inputs claimed directly in a worker's folder.
    func claims(of worker: Worker) -> [String] { names(worker.folder).filter { !$0.hasPrefix(".") } }

    func testWorkersOnThreeHostsShareOneInboxThroughKillsAndAPause() throws {
        let files = (0..<30).map { "region-\($0).nc" }
        for (k, name) in files.enumerated() { _ = try staged(name, seed: 100 + k) }
        var workers = try ["h1", "h2", "h3"].map(startWorker)
        var logs: [String] = []
        for name in files { try drop(path("staging/" + name)) }
        var generator = SystemRandomNumberGenerator()

        // 12 kills at random moments, each followed by a restart; one restart comes back as a new host,
        // so the dead worker's claims can only be adopted when its lease has expired
        var kills = 0, killedHolding = 0
        while kills < 12 && names(state + "/done").count < files.count - 3 {
            // mostly a worker that holds a claim (killed mid-file), sometimes any (idle, starting up)
            if kills % 3 != 2 {
                waitFor("a worker to hold a claim", timeout: 60) { workers.contains { !claims(of: $0).isEmpty } || names(inbox).isEmpty }
            }
            usleep(UInt32.random(in: 0...600_000, using: &generator))
            let holding = workers.indices.filter { !claims(of: workers[$0]).isEmpty }
            let k = kills % 3 != 2 && !holding.isEmpty ? holding.randomElement(using: &generator)! : Int.random(in: 0..<workers.count, using: &generator)
            if !claims(of: workers[k]).isEmpty { killedHolding += 1 }
            workers[k].process.kill9()
            _ = workers[k].process.wait()
            logs.append(workers[k].process.stderr)
            kills += 1
            workers[k] = try startWorker(kills == 6 ? "h4" : workers[k].host)
        }
        XCTAssertGreaterThanOrEqual(kills, 10, "the files were done before 10 kills")
        XCTAssertGreaterThanOrEqual(killedHolding, 3, "too few kills landed while a worker held a claim")

        // a worker paused for less than its lease (3 periods of 1 s) keeps its claims
        let paused = workers[1]
        waitFor("the worker on \(paused.host) to hold a claim", timeout: 60) {
            !claims(of: paused).isEmpty || names(state + "/done").count == files.count
        }
        let held = claims(of: paused)
        if !held.isEmpty {
            paused.process.signal(SIGSTOP)
            for _ in 0..<10 {
                usleep(100_000)
                XCTAssertEqual(claims(of: paused), held, "a claim was taken from a paused, live worker")
            }
            paused.process.signal(SIGCONT)
        }

        waitFor("all 30 files to be done", timeout: 300) { names(state + "/done").count + names(state + "/failed").count >= files.count }
        for w in workers { w.process.terminate() }
        for w in workers { XCTAssertEqual(w.process.wait(), 0, w.process.stderr); logs.append(w.process.stderr) }
        XCTAssertFalse(held.isEmpty, "the paused worker never held a claim")
        let pausedID = URL(fileURLWithPath: paused.folder).lastPathComponent
        XCTAssertFalse(logs.joined().contains("from_worker=\(pausedID)"), "the paused worker's claims were adopted")
        XCTAssert(logs.joined().contains("its lease was last renewed"), "no claim was adopted across hosts by lease expiry")
        // no worker stalled past its lease, so none may have lost a claim (nor run one twice)
        XCTAssertFalse(logs.joined().contains("claim lost"), "a claim was run twice or lost")
        try assertEveryFileDoneOnce(files)
    }

    /// Each input in done/ exactly once, nothing failed or left claimed, one complete output set of
    /// the right input per file, no temporary file, reservation or lease left.
    func assertEveryFileDoneOnce(_ files: [String]) throws {
        XCTAssertEqual(names(state + "/done"), files.sorted())
        XCTAssertEqual(names(state + "/failed"), [])
        XCTAssertEqual(claimed(), [])
        XCTAssertEqual(names(state + "/processing") + hidden(state + "/processing"), [])
        XCTAssertEqual(names(state + "/workers") + hidden(state + "/workers"), [], "leases left behind")
        let stems = files.map { Pipeline.stem($0) }
        XCTAssertEqual(names(outbox), stems.flatMap { [$0 + ".report.html", $0 + ".report.json", $0 + ".samples.nc"] }.sorted())
        XCTAssertEqual(hidden(outbox), [], "temporary files or reservations left in the outbox")
        for (name, stem) in zip(files, stems) {
            let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: outbox + "/\(stem).report.json"))) as! [String: Any]
            XCTAssertEqual((report["input"] as! [String: Any])["sha256"] as? String, try CLI.sha256(ofFile: state + "/done/" + name), name)
            let header = try Tool.run("/usr/bin/ncdump", ["-h", outbox + "/\(stem).samples.nc"])
            XCTAssert(header.status == 0 && header.stdout.contains("sample = 50 ;"), "\(stem).samples.nc: \(header.stderr)")
        }
    }
}
