import Foundation
import SbiTestSupport
import XCTest

/// A corpus of hostile and broken inputs, generated from the fixtures, through the real binary
/// (under `timeout`, so a hang fails instead of stalling the suite). Each case checks the exit
/// status, the message or error report, that the report says what to do, and that nothing was
/// written outside the outbox and nothing left half-written.
final class HostileInputTests: TemporaryDirectoryTestCase {
    var pins: String { CLI.repository.appendingPathComponent("fixtures/models/PINS").path }
    var sirdCDL: URL { CLI.repository.appendingPathComponent("fixtures/inbox/region-17_2026-11-21.cdl") }

    /// The binary (or `binary`) under a 60 s limit; a hang exits 124.
    func run(_ args: [String], cwd: URL? = nil, asNobody: Bool = false, binary: String? = nil) throws -> RunResult {
        let prefix = asNobody ? ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : []
        let command = prefix + ["/usr/bin/timeout", "-s", "KILL", "60", binary ?? CLI.binary.path] + args
        return try Tool.run(command[0], Array(command.dropFirst()), cwd: cwd)
    }

    /// Names in a folder, dotfiles included.
    func names(_ folder: String) -> Set<String> { Set((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []) }

    /// `process FILE --outbox OUT` fails with `status`, STEM.error.json holds `expected` and what to
    /// do, and the outbox holds that report only; the input's folder gains nothing.
    @discardableResult
    func assertRefused(_ file: String, status: Int32 = 65, _ expected: String, extra: [String] = [],
                       line: UInt = #line) throws -> [String: Any] {
        let outbox = path("out-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(atPath: outbox, withIntermediateDirectories: true)
        let folder = URL(fileURLWithPath: file).deletingLastPathComponent().path, before = names(folder)
        let r = try run(["process", file, "--outbox", outbox, "--samples", "5", "--steps", "2"] + (extra.isEmpty ? ["--config", pins] : extra))
        XCTAssertNotEqual(r.status, 124, "\(file) hung", line: line)
        XCTAssertEqual(r.status, status, r.stderr, line: line)
        XCTAssert(r.stderr.contains(expected), "\"\(expected)\" not in: \(r.stderr)", line: line)
        let stem = Self.stem(file)
        XCTAssertEqual(names(outbox), [stem + ".error.json"], "only the error report, nothing half-written", line: line)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: outbox + "/" + stem + ".error.json"))) as! [String: Any]
        XCTAssertEqual(report["exit_status"] as? Int, Int(status), line: line)
        XCTAssert((report["message"] as? String ?? "").contains(expected), "\(report)", line: line)
        XCTAssertFalse((report["what_to_do"] as? String ?? "").isEmpty, "every error report says what to do: \(report)", line: line)
        XCTAssertEqual(names(folder), before, "nothing written beside the input", line: line)
        return report
    }

    static func stem(_ file: String) -> String {
        let name = URL(fileURLWithPath: file).lastPathComponent
        return name.hasSuffix(".nc") ? String(name.dropLast(3)) : name
    }

    func sirdFile(_ name: String, _ edit: (String) -> String) throws -> String {
        let cdl = try String(contentsOf: sirdCDL, encoding: .utf8)
        let edited = edit(cdl)
        XCTAssertNotEqual(edited, cdl, "the edit must change the fixture")
        let folder = path("files")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let cdlPath = path(name + ".cdl"), out = folder + "/" + name + ".nc"
        try edited.write(toFile: cdlPath, atomically: true, encoding: .utf8)
        XCTAssertEqual(try Tool.run("/usr/bin/ncgen", ["-k", "nc4", "-o", out, cdlPath]).status, 0)
        return out
    }

    func testFilesThatAreNotFiles() throws {
        let folder = path("odd")
        try FileManager.default.createDirectory(atPath: folder + "/dir.nc", withIntermediateDirectories: true)
        XCTAssertEqual(mkfifo(folder + "/fifo.nc", 0o644), 0)
        try FileManager.default.createSymbolicLink(atPath: folder + "/zero.nc", withDestinationPath: "/dev/zero")
        try assertRefused(folder + "/dir.nc", "is a directory, not a regular file")
        try assertRefused(folder + "/fifo.nc", "is a named pipe (FIFO), not a regular file")
        try assertRefused(folder + "/zero.nc", "is a character device, not a regular file")
        try assertRefused(folder + "/missing.nc", status: 66, "does not exist")
    }

    func testValuesAndTimeUnits() throws {
        try assertRefused(try sirdFile("huge", { $0.replacingOccurrences(of: "infected = 0.13710891580487", with: "infected = 1e300") }),
                          "infected at time 0 = 1e+300 is")
        for (name, date) in [("banana", "banana"), ("month13", "2026-13-45"), ("feb30", "2026-02-30"), ("hour25", "2026-10-01 25:00:00")] {
            try assertRefused(try sirdFile(name, { $0.replacingOccurrences(of: "days since 2026-10-01", with: "days since \(date)") }),
                              "has the reference time \"\(date)\", which is not a date")
        }
        // a units text that grows when lower-cased ("İ" is 2 bytes, "i̇" 3) is refused, not a crash
        try assertRefused(try sirdFile("dotted", { $0.replacingOccurrences(of: "days since 2026-10-01", with: "İİ since 1") }),
                          "has the reference time \"1\", which is not a date")
        // real reference times as CF and UDUNITS write them are read
        for (name, units) in [("zoned", "days since 2026-10-01T00:00:00Z"), ("cf", "days since 1990-1-1 0:0:0"),
                              ("udunits", "days since 1992-10-8 15:15:42.5 -6:00"), ("offset", "days since 2026-10-01 00:00 +0530")] {
            let fine = try sirdFile(name, { $0.replacingOccurrences(of: "days since 2026-10-01", with: units) })
            let r = try run(["process", fine, "--config", pins, "--samples", "5", "--steps", "2"])
            XCTAssertEqual(r.status, 0, "\(units): \(r.stderr)")
        }
    }

    /// A stem of 237 characters: its outputs fit the 255-byte name limit, and so do their temporary names.
    func testLongStem() throws {
        let long = try sirdFile(String(repeating: "r", count: 237), { $0.replacingOccurrences(of: ":title = ", with: ":comment = \"long name\" ;\n\t\t:title = ") })
        let r = try run(["process", long, "--config", pins, "--samples", "5", "--steps", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let outputs = names(path("files")).filter { $0.hasPrefix("rrr") }
        XCTAssertEqual(outputs.count, 4, "\(outputs)")
        XCTAssertFalse(names(path("files")).contains { $0.hasPrefix(".") }, "no temporary file left")
    }

    /// Archives generated from the shipped ones with one manifest field made absurd or inconsistent,
    /// and one with a damaged gzip trailer: every one refused with the field named, by `inspect` and
    /// by `process` (with an error report), none crashing or hanging.
    func testCraftedArchives() throws {
        let cases: [(String, String, (inout [String: Any]) -> Void, String)] = [
            ("edge", "gaussian-linear", { m in Self.set(&m, ["spec", "edges"], [["parent": 0, "child": 999]]) }, "spec.edges[0]"),
            ("edge-negative", "gaussian-linear", { m in Self.set(&m, ["spec", "edges"], [["parent": -1, "child": 3]]) }, "spec.edges[0]"),
            ("widening", "gaussian-linear", { m in Self.set(&m, ["transformer", "widening"], 1 << 40) }, "transformer.widening"),
            ("layers", "gaussian-linear", { m in Self.set(&m, ["transformer", "layers"], 1_000_000_000) }, "transformer.layers"),
            ("steps", "gaussian-linear", { m in Self.set(&m, ["sampler", "steps"], 1_000_000_000_000) }, "sampler.steps"),
            ("zero-std", "gaussian-linear", { m in Self.setNormalization(&m, std: 0) }, "normalization.std[0]"),
            ("logit-count", "gaussian-linear", { m in Self.set(&m, ["normalization", "logit"], [["lower": 0, "upper": 1]]) }, "normalization.logit"),
            ("logit-bounds", "gaussian-linear", { m in
                Self.set(&m, ["normalization", "logit"], [["lower": 1, "upper": 1]] + [Any](repeating: NSNull(), count: 19)) }, "normalization.logit[0]"),
            ("sigma", "gaussian-linear", { m in Self.set(&m, ["network", "sde"], ["ve": ["sigmaMin": -1, "sigmaMax": 15]]) }, "network.sde"),
            ("edm-vp", "gaussian-linear", { m in
                Self.set(&m, ["network", "sde"], ["vp": ["betaMin": 0.01, "betaMax": 10]])
                Self.set(&m, ["network", "parametrisation"], "edm") }, "network.parametrisation"),
            ("sigma-high", "gaussian-linear", { m in
                Self.set(&m, ["sampler"], ["method": "sde", "steps": 50, "resampling": 0, "sigma_high": 3]) }, "sampler.sigma_high"),
            ("support", "gaussian-linear", { m in Self.setVariable(&m, 0, "support", ["lower": 2, "upper": 1]) }, "spec.variables[0].support"),
            ("max-points", "lotka-volterra", { m in Self.setTime(&m, 4, "maxPoints", 0) }, "spec.variables[4].time.maxPoints"),
            ("grid", "lotka-volterra", { m in Self.setTime(&m, 4, "grid", 0) }, "spec.variables[4].time.grid"),
        ]
        let obs = path("gl.nc")
        XCTAssertEqual(try run(["simulate", "--task", "gaussian_linear", "--seed", "2", "--out", obs]).status, 0)
        for (name, base, edit, field) in cases {
            let archive = try craft(name, from: base, edit)
            let inspect = try run(["inspect", archive])
            XCTAssertEqual(inspect.status, 65, "\(name): \(inspect.stderr)")
            XCTAssert(inspect.stderr.contains("field \(field) "), "\(name): \(inspect.stderr)")
            try assertRefused(obs, field, extra: ["--model", "gaussian_linear=" + archive])
        }
        // reference.json and calibration.json that do not fit the model are refused, naming the entry
        let work = try unpacked("reference", from: "gaussian-linear")
        let referenceURL = URL(fileURLWithPath: work + "/reference.json")
        var reference = try JSONSerialization.jsonObject(with: Data(contentsOf: referenceURL)) as! [String: Any]
        reference["rows"] = (reference["rows"] as! [[Double]]).map { Array($0.prefix(3)) }
        try JSONSerialization.data(withJSONObject: reference).write(to: referenceURL)
        try Data("{\"format\": \"sbiwatch-calibration-9\"}".utf8).write(to: URL(fileURLWithPath: work + "/calibration.json"))
        for (entry, needle) in [("reference.json", "reference.json has rows that are not 20 finite values"),
                                ("calibration.json", "calibration.json cannot be read")] {
            let out = path("archives/\(entry).sbim")
            XCTAssertEqual(try Tool.run("/bin/tar", ["-C", work, "-czf", out, "manifest.json", "weights.safetensors", "README.md", entry]).status, 0)
            let inspect = try run(["inspect", out])
            XCTAssertEqual(inspect.status, 65, "\(entry): \(inspect.stderr)")
            XCTAssert(inspect.stderr.contains(needle), "\(entry): \(inspect.stderr)")
        }

        let damaged = path("archives/crc.sbim")
        var bytes = try Data(contentsOf: CLI.repository.appendingPathComponent("fixtures/models/gaussian-linear.sbim"))
        bytes[bytes.count - 8] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: damaged))
        try assertRefused(obs, "does not match the gzip trailer", extra: ["--model", "gaussian_linear=" + damaged])
    }

    /// The entries of shipped archive `base`, unpacked into archives/NAME; returns that folder.
    func unpacked(_ name: String, from base: String) throws -> String {
        let work = path("archives/\(name)")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let source = CLI.repository.appendingPathComponent("fixtures/models/\(base).sbim").path
        XCTAssertEqual(try Tool.run("/bin/tar", ["-C", work, "-xzf", source]).status, 0)
        return work
    }

    func craft(_ name: String, from base: String, _ edit: (inout [String: Any]) -> Void) throws -> String {
        let work = try unpacked(name, from: base)
        let manifestURL = URL(fileURLWithPath: work + "/manifest.json")
        var manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: manifestURL)) as! [String: Any]
        edit(&manifest)
        try JSONSerialization.data(withJSONObject: manifest).write(to: manifestURL)
        let out = path("archives/\(name).sbim")
        XCTAssertEqual(try Tool.run("/bin/tar", ["-C", work, "-czf", out, "manifest.json", "weights.safetensors", "README.md"]).status, 0)
        return out
    }

    static func set(_ m: inout [String: Any], _ keys: [String], _ value: Any) {
        guard keys.count > 1 else { m[keys[0]] = value; return }
        var inner = m[keys[0]] as! [String: Any]
        set(&inner, Array(keys.dropFirst()), value)
        m[keys[0]] = inner
    }

    static func setNormalization(_ m: inout [String: Any], std: Double) {
        var n = m["normalization"] as! [String: Any], s = n["std"] as! [Any]
        s[0] = std; n["std"] = s; m["normalization"] = n
    }

    static func setVariable(_ m: inout [String: Any], _ k: Int, _ key: String, _ value: Any) {
        var spec = m["spec"] as! [String: Any], vars = spec["variables"] as! [[String: Any]]
        vars[k][key] = value; spec["variables"] = vars; m["spec"] = spec
    }

    static func setTime(_ m: inout [String: Any], _ k: Int, _ key: String, _ value: Any) {
        let vars = (m["spec"] as! [String: Any])["variables"] as! [[String: Any]]
        var time = vars[k]["time"] as! [String: Any]
        time[key] = value
        setVariable(&m, k, "time", time)
    }

    /// A file found by fuzzing that crashes netCDF-C 4.9.0 inside nc_open (SIGSEGV in
    /// NC_hashmapfree, a corrupt classic header; under the child's memory cap the same header may
    /// instead end in a malloc failure, depending on the address layout): `process` refuses it after
    /// a test read in a child process, and the daemon sets it aside in failed/ instead of dying.
    func testFileThatCrashesTheNetCDFLibrary() throws {
        let crash = CLI.repository.appendingPathComponent("Tests/Fuzz/crashes/netcdf-4.9.0-nc-open-segv.nc").path
        let folder = path("crash")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: crash, toPath: folder + "/crash.nc")
        let message = try assertRefused(folder + "/crash.nc", "crash.nc: ")["message"] as? String ?? ""
        XCTAssert(message.contains("the netCDF library crashed (signal 11)") || message.contains("Memory allocation (malloc) failure"), message)
        let inbox = path("crash-in"), outbox = path("crash-out")
        for d in [inbox, outbox] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        try FileManager.default.copyItem(atPath: crash, toPath: inbox + "/crash.nc")
        let r = try run(["--inbox", inbox, "--outbox", outbox, "--config", pins, "--once", "--settle", "0"])
        XCTAssertEqual(r.status, 65, r.stderr)
        XCTAssertEqual(names(inbox + "/.sbiwatch/failed"), ["crash.nc"])
        XCTAssertEqual(names(outbox), ["crash.error.json"])
    }

    /// A 2,776-byte file found by fuzzing on which netCDF-C 4.9.0's nc_open allocates 22 GB and takes
    /// 72 s (measured in-process): read first in a child whose address space is capped at 4 GB, it
    /// fails fast there and is refused with the child's error, never opened in the main process.
    func testFileThatMakesNetCDFAllocateGigabytes() throws {
        let hostile = CLI.repository.appendingPathComponent("Tests/Fuzz/crashes/netcdf-4.9.0-huge-allocation.nc").path
        let folder = path("huge")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: hostile, toPath: folder + "/huge.nc")
        let start = Date()
        try assertRefused(folder + "/huge.nc", "cannot be read as NetCDF")
        XCTAssertLessThan(Date().timeIntervalSince(start), 20, "the capped child fails in well under a second; uncapped it took 72 s")
    }

    /// A 130-byte classic header found by fuzzing that declares 16,515,077 dimensions: sbiwatch's
    /// reader looped over all of them (93 s, 2.6 GB); now the header's counts are capped at 10,000.
    func testHeaderDeclaringMillionsOfEntries() throws {
        let hostile = CLI.repository.appendingPathComponent("Tests/Fuzz/crashes/header-16515077-dimensions.nc").path
        let folder = path("header")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: hostile, toPath: folder + "/header.nc")
        try assertRefused(folder + "/header.nc", "the header declares 16515077 dimensions; sbiwatch reads at most 10000")
    }

    func testCommandLineAndModelsFiles() throws {
        let unknown = try run(["frobnicate"])
        XCTAssertEqual(unknown.status, 64)
        XCTAssert(unknown.stderr.contains("unknown command 'frobnicate'"), unknown.stderr)
        let archive = CLI.repository.appendingPathComponent("fixtures/models/gaussian-linear.sbim").path
        let crlf = path("crlf.models"), badPin = path("pin.models")
        try Data("# shipped\r\ngl=\(archive)\r\n".utf8).write(to: URL(fileURLWithPath: crlf))
        try Data("gl=\(archive)@sha256:12ab\n".utf8).write(to: URL(fileURLWithPath: badPin))
        XCTAssertEqual(try run(["models", "--config", crlf]).status, 0, "CRLF line ends are read")
        let pin = try run(["models", "--config", badPin])
        XCTAssertEqual(pin.status, 78, pin.stderr)
        XCTAssert(pin.stderr.contains("\(badPin):1:") && pin.stderr.contains("malformed pin"), pin.stderr)
    }

    /// The daemon on a full outbox (a 16 KB tmpfs, filled): the bad input still leaves processing/
    /// for failed/, the reason is logged, and --once exits 74; on a read-only outbox it exits 73 at
    /// once; an input it may not read (run as nobody) fails with its report. Needs root (mounts, setpriv).
    func testDaemonNeverLeavesAFileInProcessing() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root to mount a small outbox") }
        let inbox = path("in"), outbox = path("full")
        for d in [inbox, outbox] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        guard try Tool.run("/bin/mount", ["-t", "tmpfs", "-o", "size=16k", "tmpfs", outbox]).status == 0 else { throw XCTSkip("cannot mount tmpfs here") }
        defer { _ = try? Tool.run("/bin/umount", [outbox]) }
        _ = try Tool.run("/bin/sh", ["-c", "head -c 16384 /dev/zero > '\(outbox)/fill'"])
        try Data("not netcdf\n".utf8).write(to: URL(fileURLWithPath: inbox + "/bad.nc"))
        let full = try run(["--inbox", inbox, "--outbox", outbox, "--config", pins, "--once", "--settle", "0"])
        XCTAssertEqual(full.status, 74, full.stderr)
        XCTAssert(full.stderr.contains("error report not written"), full.stderr)
        XCTAssertEqual(names(inbox + "/.sbiwatch/failed"), ["bad.nc"])
        XCTAssertEqual(names(inbox + "/.sbiwatch/processing"), [])

        // good files whose outputs cannot be written are the outbox's fault: the first goes back to
        // the inbox, the run stops taking files, and nothing lands in failed/
        for name in ["good-a.nc", "good-b.nc"] {
            try FileManager.default.copyItem(atPath: CLI.repository.appendingPathComponent("fixtures/inbox/pond-3_2026-11-21.nc").path,
                                             toPath: inbox + "/" + name)
        }
        let good = try run(["--inbox", inbox, "--outbox", outbox, "--config", pins, "--once", "--settle", "0", "--jobs", "1",
                            "--samples", "5", "--steps", "2"])
        XCTAssert([73, 74].contains(good.status), "cannot create (73) or cannot write (74): \(good.status) \(good.stderr)")
        XCTAssert(good.stderr.contains("returned") && good.stderr.contains("outbox failing"), good.stderr)
        XCTAssertEqual(names(inbox).filter { !$0.hasPrefix(".") }, ["good-a.nc", "good-b.nc"] as Set, "both wait in the inbox for the next run")
        XCTAssertEqual(names(inbox + "/.sbiwatch/failed"), ["bad.nc"])
        XCTAssertEqual(names(inbox + "/.sbiwatch/processing"), [])
        XCTAssertFalse(names(outbox).contains { $0.hasPrefix(".") }, "no temporary file left in the outbox")

        let readOnly = path("ro")
        try FileManager.default.createDirectory(atPath: readOnly, withIntermediateDirectories: true)
        XCTAssertEqual(try Tool.run("/bin/mount", ["-t", "tmpfs", "-o", "ro,size=16k", "tmpfs", readOnly]).status, 0)
        defer { _ = try? Tool.run("/bin/umount", [readOnly]) }
        try Data("not netcdf\n".utf8).write(to: URL(fileURLWithPath: inbox + "/second.nc"))
        let ro = try run(["--inbox", inbox, "--outbox", readOnly, "--config", pins, "--once"])
        XCTAssertEqual(ro.status, 73, ro.stderr)
        XCTAssert(ro.stderr.contains("is not writable"), ro.stderr)
        XCTAssert(names(inbox).contains("second.nc"), "nothing claimed before the outbox is known to be writable")
    }

    func testUnreadableInputFailsWithItsReport() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root to run the daemon as another user") }
        let spool = path("nobody"), inbox = spool + "/in", outbox = spool + "/out"
        for d in [inbox, outbox] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        for d in [dir.path, spool, inbox, outbox] { chmod(d, 0o777) }
        // nobody may not reach the checkout (e.g. under /root): the binary and the models it runs are copied
        let binary = spool + "/sbiwatch", models = spool + "/models"
        try FileManager.default.copyItem(atPath: CLI.binary.path, toPath: binary)
        try FileManager.default.copyItem(atPath: CLI.repository.appendingPathComponent("fixtures/models").path, toPath: models)
        for d in [spool, models] { chmod(d, 0o755) }
        let secret = inbox + "/secret.nc"
        try FileManager.default.copyItem(atPath: CLI.repository.appendingPathComponent("fixtures/inbox/pond-3_2026-11-21.nc").path, toPath: secret)
        chmod(secret, 0)
        let r = try run(["--inbox", inbox, "--outbox", outbox, "--config", models + "/PINS", "--once", "--settle", "0"],
                        asNobody: true, binary: binary)
        XCTAssertEqual(r.status, 65, r.stderr)
        XCTAssertEqual(names(inbox + "/.sbiwatch/failed"), ["secret.nc"])
        XCTAssertEqual(names(inbox + "/.sbiwatch/processing"), [])
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: outbox + "/secret.error.json"))) as! [String: Any]
        XCTAssert((report["message"] as? String ?? "").contains("permission denied"), "\(report)")
        XCTAssertEqual(names(outbox), ["secret.error.json"])
    }
}
