import Foundation
import SbiCore
@testable import SbiDaemon
import SbiPipeline
import XCTest

final class JobTableTests: XCTestCase {
    func claim(_ name: String) -> Claim { Claim(folder: "/spool/processing/w", name: name) }

    func failure(_ name: String) -> JobTable.Outcome { .failed(SbiError(.badInput, "bad", subject: name), unreported: nil) }

    func testStartFinishAndTakeEachOutcomeOnce() {
        let table = JobTable()
        let a = table.start(claim("a.nc"), recovered: false, committing: "/spool/committing/w"), b = table.start(claim("b.nc"), recovered: false, committing: "/spool/committing/w")
        XCTAssertEqual(table.runningCount, 2)
        XCTAssertFalse(table.recoveredRunning)
        table.finish(a, failure("a.nc"))
        XCTAssertEqual(table.runningCount, 1)
        XCTAssertFalse(table.isRunning(a))
        XCTAssertTrue(table.isRunning(b))
        XCTAssertEqual(table.unaccountedCount, 1)
        XCTAssertEqual(table.takeFinished().map(\.0), ["a.nc"])
        XCTAssertEqual(table.unaccountedCount, 0)
        XCTAssertTrue(table.takeFinished().isEmpty, "an outcome is handed out once")
        table.finish(b, .abandoned)
        XCTAssertEqual(table.runningCount, 0)
        XCTAssertEqual(table.takeFinished().map(\.0), ["b.nc"])
    }

    /// A file claimed under the name of one whose input has just moved to done/ is a second job:
    /// whichever finishes first, the other still counts as running (so --once waits for it and the
    /// job limit holds).
    func testTwoJobsOfOneNameAreBothCounted() {
        let table = JobTable()
        let old = table.start(claim("x.nc"), recovered: true, committing: "/spool/committing/w")
        let new = table.start(claim("x.nc"), recovered: false, committing: "/spool/committing/w")
        XCTAssertEqual(table.runningCount, 2)
        XCTAssertTrue(table.recoveredRunning)
        table.finish(new, failure("x.nc"))
        XCTAssertTrue(table.isRunning(old), "the older job is still running")
        XCTAssertFalse(table.isRunning(new))
        XCTAssertEqual(table.runningCount, 1)
        XCTAssertEqual(table.takeFinished().count, 1)
        table.finish(old, .abandoned)
        XCTAssertEqual(table.runningCount, 0)
        XCTAssertEqual(table.takeFinished().count, 1)
    }

    func testRecoveredJobsAreVisible() {
        let table = JobTable()
        let r = table.start(claim("r.nc"), recovered: true, committing: "/spool/committing/w")
        XCTAssertTrue(table.recoveredRunning)
        XCTAssertEqual(table.runningJobs.map(\.name), ["r.nc"])
        table.finish(r, .abandoned)
        XCTAssertFalse(table.recoveredRunning)
        XCTAssertTrue(table.runningJobs.isEmpty)
    }

    /// Many threads finishing at once: every outcome is counted exactly once and nothing stays running.
    func testConcurrentFinishes() {
        let table = JobTable()
        let jobs = (0..<200).map { table.start(claim("f\($0).nc"), recovered: false, committing: "/spool/committing/w") }
        var taken = 0
        let takenLock = NSLock()
        DispatchQueue.concurrentPerform(iterations: jobs.count) { i in
            table.finish(jobs[i], .abandoned)
            if i % 7 == 0 {
                let n = table.takeFinished().count
                takenLock.lock(); taken += n; takenLock.unlock()
            }
        }
        taken += table.takeFinished().count
        XCTAssertEqual(taken, 200)
        XCTAssertEqual(table.runningCount, 0)
    }
}
