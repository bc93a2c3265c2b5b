import Foundation
import XCTest
import SbiCore

final class AtomicFileTests: XCTestCase {
    /// Temporary names carry their writer's pid; removing a path's leftovers of one process leaves the
    /// target, other processes' temporaries and other files' temporaries alone.
    func testTemporaryNamesOwnersAndCleanup() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atomic-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let target = dir + "/run.checkpoint"
        let own = AtomicFile.temporaryPath(for: target)
        let ownName = URL(fileURLWithPath: own).lastPathComponent
        XCTAssertEqual(URL(fileURLWithPath: own).deletingLastPathComponent().path, dir)
        XCTAssertEqual(AtomicFile.temporaryOwner(ofName: ownName), getpid())
        XCTAssertNil(AtomicFile.temporaryOwner(ofName: "run.checkpoint"))
        XCTAssertNil(AtomicFile.temporaryOwner(ofName: ".hidden.nc"))

        let other = dir + "/.run.checkpoint.tmp-\(getpid() + 1)-7"
        let otherFile = AtomicFile.temporaryPath(for: dir + "/model.sbim")
        for p in [target, own, other, otherFile] { XCTAssert(FileManager.default.createFile(atPath: p, contents: Data([1]))) }
        AtomicFile.removeTemporaries(of: target)
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
        XCTAssertEqual(left, Set([target, other, otherFile].map { URL(fileURLWithPath: $0).lastPathComponent }))
    }
}
