import Foundation
import XCTest
import SbiTestSupport

/// What the tests of the daemon share: an inbox, an outbox, a staging folder, simulated files and
/// views of the spool.
class SpoolTestCase: TemporaryDirectoryTestCase {
    var inbox: String { path("in") }
    var outbox: String { path("out") }
    var state: String { inbox + "/.sbiwatch" }

    override func setUpWithError() throws {
        try super.setUpWithError()
        for d in [inbox, outbox, path("staging")] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
    }

    /// A simulated SIRD observation file in the staging folder (seed s).
    func staged(_ name: String, seed: Int, model: String = "sird") throws -> String {
        let p = path("staging/" + name)
        let r = try CLI.run(["simulate", "--task", "sird", "--seed", "\(seed)", "--format", seed % 2 == 0 ? "nc4" : "classic",
                             "--model-name", model, "--out", p])
        XCTAssertEqual(r.status, 0, r.stderr)
        return p
    }

    /// Drops a file into the inbox atomically (rename from the staging folder).
    func drop(_ staged: String) throws {
        let name = URL(fileURLWithPath: staged).lastPathComponent
        XCTAssertEqual(rename(staged, inbox + "/" + name), 0)
    }

    func names(_ folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    /// The inputs claimed by workers: files anywhere under processing/ (workers' and adopted folders), by name.
    func claimed() -> [String] {
        let root = state + "/processing"
        let all = (FileManager.default.enumerator(atPath: root)?.allObjects as? [String]) ?? []
        return all.filter { rel in
            var st = stat()
            let name = URL(fileURLWithPath: rel).lastPathComponent
            return !name.hasPrefix(".") && lstat(root + "/" + rel, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
        }.map { URL(fileURLWithPath: $0).lastPathComponent }.sorted()
    }

    func hidden(_ folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasPrefix(".") }.sorted()
    }

    func watchArguments(_ extra: [String] = []) -> [String] {
        ["--inbox", inbox, "--outbox", outbox, "--model", "sird=\(TinyModels.sird)", "--samples", "3", "--settle", "0.3",
         "--rescan", "1"] + extra
    }

    /// Waits until the condition holds (polling), failing after `timeout` seconds.
    func waitFor(_ what: String, timeout: Double = 120, _ condition: () -> Bool) {
        let end = Date().addingTimeInterval(timeout)
        while !condition() {
            if Date() > end { XCTFail("timed out waiting for \(what)"); return }
            usleep(100_000)
        }
    }
}
