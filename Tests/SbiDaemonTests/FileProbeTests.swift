import Foundation
import SbiCore
import SbiDaemon
import SbiPipeline
import SbiNetCDF
import SbiTestSupport
import XCTest

/// The daemon's readiness check in both forms: in this process, and as a child process of the real binary.
final class FileProbeTests: TemporaryDirectoryTestCase {
    func writeNetCDF() throws -> String {
        let p = path("ok.nc")
        let w = try NetCDFWriter(path: p)
        let d = try w.defineDimension("time", length: 2)
        let v = try w.defineVariable("infected", dimensions: [d])
        try w.endDefinitions()
        try w.write([0.1, 0.2], variable: v)
        try w.close()
        return p
    }

    func testBothFormsAgree() throws {
        let good = try writeNetCDF()
        let text = path("notes.nc")
        try Data("not netcdf\n".utf8).write(to: URL(fileURLWithPath: text))
        let empty = path("empty.nc")
        FileManager.default.createFile(atPath: empty, contents: Data())
        let binary = RepositoryPaths.builtBinary.path
        XCTAssert(FileManager.default.isExecutableFile(atPath: binary), "build sbiwatch first: \(binary)")
        let inProcess = FileProbe.netCDFInProcess, child = FileProbe.childProcess(executable: binary)
        XCTAssertEqual(inProcess.check(good), .valid)
        XCTAssertEqual(child.check(good), .valid)
        for (file, expected) in [(text, "not a NetCDF file"), (empty, "empty"), (path("missing.nc"), "does not exist")] {
            XCTAssertEqual(inProcess.check(file), .invalid(nil), file)
            // the child says why, so the pipeline can refuse the file without reading it itself
            guard case .invalid(let verdict?) = child.check(file) else { return XCTFail("\(file): no verdict") }
            XCTAssert(verdict.message.contains(expected), "\(file): \(verdict)")
        }
    }

    /// A header found by fuzzing on which netCDF-C copied a dimension name past the 257-byte buffer
    /// sbiwatch gave it (heap corruption, then a crash): read in this very process, it must now
    /// read cleanly, and the test process survive.
    func testNameLongerThanItsBufferIsReadInProcess() throws {
        let file = RepositoryPaths.root.appendingPathComponent("Tests/Fuzz/crashes/name-normalised-past-its-buffer.nc").path
        for _ in 0..<3 { XCTAssertEqual(FileProbe.netCDFInProcess.check(file), .valid) }
        let r = try NetCDFReader(path: file)
        defer { r.close() }
        XCTAssertEqual(r.dimensions.count, 5)
        XCTAssert(r.dimensions.allSatisfy { $0.name.utf8.count <= 256 })
    }

    /// The child-process form trusts only the exit status: a probe program that fails or cannot start rejects.
    func testExecutableProbeUsesTheExitStatus() throws {
        let good = try writeNetCDF()
        XCTAssertEqual(FileProbe.executable("/bin/sh", arguments: ["-c", "test -s \"$0\""]).check(good), .valid)
        XCTAssertEqual(FileProbe.executable("/bin/sh", arguments: ["-c", "exit 3"]).check(good), .invalid(nil))
        XCTAssertEqual(FileProbe.executable("/bin/sh", arguments: ["-c", "sleep 10"]).check(good, timeout: 0.5), .timedOut)
        XCTAssertEqual(FileProbe.executable("/bin/sh", arguments: ["-c", "kill -SEGV $$"]).check(good), .crashed(SIGSEGV))
        guard case .unavailable = FileProbe.executable(path("no-such-program"), arguments: []).check(good) else {
            return XCTFail("a probe that cannot start is the machine's problem, not the file's")
        }
    }

    /// The pipeline asks the probe before it reads a file itself: a file that crashes the probe is
    /// refused with an error report (exit 65), and nothing else is written.
    func testPipelineRefusesAFileThatCrashesTheProbe() throws {
        let good = try writeNetCDF()
        let archive = RepositoryPaths.root.appendingPathComponent("fixtures/models/gaussian-linear.sbim").path
        let catalog = try ModelCatalog([ModelReference(name: "gaussian-linear", reference: archive)])
        let outbox = path("out")
        try FileManager.default.createDirectory(atPath: outbox, withIntermediateDirectories: true)
        var options = ProcessOptions(outbox: outbox)
        options.probe = .executable("/bin/sh", arguments: ["-c", "kill -SEGV $$"])
        XCTAssertThrowsError(try Pipeline.processOrReport(file: good, catalog: catalog, options: options)) { e in
            XCTAssertEqual((e as? SbiError)?.code, .badInput)
            XCTAssert("\(e)".contains("crashed (signal \(SIGSEGV))"), "\(e)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outbox), ["ok.error.json"])
    }
}
