import Foundation
import XCTest
import SbiCore

final class AtomicFileTests: XCTestCase {
    /// Temporary names carry their writer's host, boot and pid; removing a path's leftovers of one process leaves the
    /// target, other processes' temporaries and other files' temporaries alone.
    func testTemporaryNamesOwnersAndCleanup() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atomic-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let target = dir + "/run.checkpoint"
        let own = AtomicFile.temporaryPath(for: target)
        let ownName = URL(fileURLWithPath: own).lastPathComponent
        XCTAssertEqual(URL(fileURLWithPath: own).deletingLastPathComponent().path, dir)
        XCTAssertEqual(AtomicFile.temporaryOwner(ofName: ownName), WorkerIdentity.current)
        XCTAssertEqual(AtomicFile.temporaryOwner(ofName: ".a-b.nc.tmp-node-1.cluster.0badf00d.42-99"),
                       WorkerIdentity(host: "node-1.cluster", boot: "0badf00d", pid: 42))
        XCTAssertNil(AtomicFile.temporaryOwner(ofName: "run.checkpoint"))
        XCTAssertNil(AtomicFile.temporaryOwner(ofName: ".hidden.nc"))

        let me = WorkerIdentity.current
        // another process of this machine, and this pid on another host: neither is removed
        let other = dir + "/.run.checkpoint.tmp-\(WorkerIdentity(host: me.host, boot: me.boot, pid: getpid() + 1))-7"
        let otherHost = dir + "/.run.checkpoint.tmp-\(WorkerIdentity(host: me.host + "-b", boot: me.boot, pid: getpid()))-7"
        let otherFile = AtomicFile.temporaryPath(for: dir + "/model.sbim")
        for p in [target, own, other, otherHost, otherFile] { XCTAssert(FileManager.default.createFile(atPath: p, contents: Data([1]))) }
        AtomicFile.removeTemporaries(of: target)
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
        XCTAssertEqual(left, Set([target, other, otherHost, otherFile].map { URL(fileURLWithPath: $0).lastPathComponent }))
    }

    func testWorkerIdentityParsesWhatItPrints() {
        let id = WorkerIdentity(host: "gpu01.hpc.example.org", boot: "a1b2c3d4", pid: 31337)
        XCTAssertEqual(id.description, "gpu01.hpc.example.org.a1b2c3d4.31337")
        XCTAssertEqual(WorkerIdentity.parse(id.description), id)
        XCTAssertNil(WorkerIdentity.parse("host.boot"))
        XCTAssertNil(WorkerIdentity.parse("a/b.boot.12"))
        XCTAssertNil(WorkerIdentity.parse("host.boot.-3"))
        // names that would not fit a file name are cut and cleaned
        XCTAssertEqual(WorkerIdentity(host: "we/ird host", boot: "b", pid: 1).host, "we-ird-host")
        XCTAssertEqual(WorkerIdentity(host: String(repeating: "h", count: 100), boot: "b", pid: 1).host.count, 63)
        XCTAssertFalse(WorkerIdentity.current.isDeadProcessHere)
        XCTAssertTrue(WorkerIdentity.current.sharesMachine(with: WorkerIdentity(host: WorkerIdentity.current.host,
                                                                                boot: WorkerIdentity.current.boot, pid: 1)))
    }
}
