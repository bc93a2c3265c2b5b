import Foundation
import SbiCore
@testable import SbiDaemon
import SbiTestSupport
import XCTest

/// The primitives that make the spool safe for workers on several hosts: claims, publishing that
/// never overwrites, on-disk stem reservations, leases and the adoption of a dead worker's claims.
final class SharedSpoolPrimitivesTests: TemporaryDirectoryTestCase {
    func write(_ text: String, _ path: String) { XCTAssert(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)), path) }
    func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }
    func names(_ folder: String) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted() }

    func makeSpool() throws -> (SpoolFolders, outbox: String) {
        let inbox = path("in"), outbox = path("out")
        for d in [inbox, outbox] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        return (try SpoolFolders(inbox: inbox), outbox)
    }

    /// Of two workers renaming one inbox file, one wins and the other learns it lost; a rename NFS
    /// retransmitted after it succeeded still counts as won.
    func testClaimHasOneWinner() throws {
        let (spool, _) = try makeSpool()
        write("x", spool.inbox + "/a.nc")
        let mine = spool.processing + "/a.nc", theirs = spool.processing + "/b.nc"
        XCTAssertTrue(try SpoolFolders.claim(spool.inbox + "/a.nc", as: mine))
        XCTAssertFalse(try SpoolFolders.claim(spool.inbox + "/a.nc", as: theirs))
        XCTAssertFalse(FileManager.default.fileExists(atPath: theirs))
        XCTAssertTrue(try SpoolFolders.claim(spool.inbox + "/a.nc", as: mine), "a retransmitted rename that had succeeded")
    }

    /// Publishing links under a free name and never replaces a file already there.
    func testPublishNeverOverwrites() throws {
        let (spool, _) = try makeSpool()
        write("old", spool.done + "/a.nc")
        write("new", spool.processing + "/a.nc")
        XCTAssertEqual(try SpoolFolders.publish(spool.processing + "/a.nc", into: spool.done, as: "a.nc"), "a.1.nc")
        XCTAssertEqual(read(spool.done + "/a.nc"), "old")
        XCTAssertEqual(read(spool.done + "/a.1.nc"), "new")
        XCTAssertFalse(FileManager.default.fileExists(atPath: spool.processing + "/a.nc"))
        write("third", spool.processing + "/noext")
        write("x", spool.done + "/noext")
        XCTAssertEqual(try SpoolFolders.publish(spool.processing + "/noext", into: spool.done, as: "noext"), "noext.1")
        XCTAssertThrowsError(try SpoolFolders.publish(spool.processing + "/gone.nc", into: spool.done, as: "gone.nc"))
    }

    /// A stem is held by one claim at a time, on disk: another worker, or another claim of the same
    /// worker with identical content, gets BASE.1; the holder gets its own stem again; a stem refused
    /// by the outbox check is skipped; nobody releases another claim's reservation.
    func testStemReservationsOnDisk() throws {
        let (spool, outbox) = try makeSpool()
        let a = StemReservations(outbox: outbox, owner: WorkerIdentity(host: "ha", boot: "b", pid: 1))
        let b = StemReservations(outbox: outbox, owner: WorkerIdentity(host: "hb", boot: "b", pid: 2))
        let claimA = Claim(folder: spool.processing, name: "s.nc"), claimB = Claim(folder: spool.state, name: "s.nc")
        let claimA2 = Claim(folder: spool.done, name: "s.nc4")
        let held = try a.reserve(base: "s", claim: claimA, sha256: "aa") { _ in true }
        XCTAssertEqual(held.stem, "s")
        XCTAssertEqual(try b.reserve(base: "s", claim: claimB, sha256: "bb") { $0 != "s.1" }.stem, "s.2")
        XCTAssertEqual(claimB.recordedReservation?.stem, "s.2", "the claim records its stem")
        XCTAssertEqual(try a.reserve(base: "s", claim: claimA2, sha256: "aa") { _ in true }.stem, "s.1",
                       "a second claim of the same worker and content gets its own stem")
        XCTAssertEqual(try a.reserve(base: "s", claim: claimA, sha256: "aa") { _ in true }, held, "the holder's own reservation")
        b.release(StemReservation(stem: "s", token: held.token))
        a.release(StemReservation(stem: "s", token: "other"))
        XCTAssertEqual(a.holder("s")?.worker, a.owner, "released by a worker or claim that does not hold it")
        a.release(held)
        XCTAssertNil(a.holder("s"))
        XCTAssertEqual(try b.reserve(base: "s", claim: claimB, sha256: "bb") { _ in true }.stem, "s.2", "the stem the claim recorded is kept")
        XCTAssertEqual(names(outbox).filter { $0.contains(".tmp-") }, [], "no temporary file left")
    }

    /// Same machine: a worker is alive while it holds its lease's flock, and gone once it does not.
    func testSameMachineLivenessByFlock() throws {
        let (spool, _) = try makeSpool()
        let me = WorkerIdentity.current
        let judge = try WorkerLease(spool: spool, identity: me, period: 1)
        defer { judge.end(removingLease: true) }
        let other = WorkerIdentity(host: me.host, boot: me.boot, pid: 999_999)
        let lease = try WorkerLease(spool: spool, identity: other, period: 1)
        XCTAssertNil(judge.goneReason(other))
        lease.end(removingLease: false)
        XCTAssertNotNil(judge.goneReason(other))
        XCTAssertNil(judge.goneReason(me))
    }

    /// Another host: a worker whose lease is older than 3 periods (by the filesystem's clock) is
    /// adopted whole, its attempts and reservation with it, its temporary files and lease removed;
    /// a worker with a fresh lease keeps its claims.
    func testAdoptionOfADeadWorkerOnAnotherHost() throws {
        let (spool, outbox) = try makeSpool()
        let me = WorkerIdentity(host: "adopter", boot: "b0", pid: 10)
        let dead = WorkerIdentity(host: "lost-node", boot: "b1", pid: 11), alive = WorkerIdentity(host: "busy-node", boot: "b2", pid: 12)
        let lease = try WorkerLease(spool: spool, identity: me, period: 1)
        defer { lease.end(removingLease: true) }
        let stems = StemReservations(outbox: outbox, owner: me)
        for (worker, age) in [(dead, 100.0), (alive, 0.0)] {
            let folder = spool.claimFolder(of: worker)
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            write("input of \(worker.host)", folder + "/x.nc")
            write("2\n", folder + "/.x.nc.attempts")
            write("x-\(worker.host) t\(worker.pid)\n", folder + "/.x.nc.stem")
            write("\(worker) sha t\(worker.pid)\n", outbox + "/.x-\(worker.host).sbiwatch-stem")
            write("period 1\n", WorkerLease.leasePath(spool, worker))
            var times = [timeval(tv_sec: time(nil) - Int(age), tv_usec: 0), timeval(tv_sec: time(nil) - Int(age), tv_usec: 0)]
            XCTAssertEqual(utimes(WorkerLease.leasePath(spool, worker), &times), 0)
        }
        write("partial", outbox + "/.x.samples.nc.tmp-\(dead)-123")
        // a lease half taken by a worker that died doing so (old), and one being taken now (fresh)
        let stale = spool.workers + "/.\(WorkerIdentity(host: "ghost", boot: "b3", pid: 13)).lease.tmp-\(WorkerIdentity(host: "ghost", boot: "b3", pid: 13))-1"
        let fresh = spool.workers + "/.\(alive).lease.tmp-\(alive)-2"
        write("worker", stale); write("worker", fresh)
        var old = [timeval(tv_sec: time(nil) - 100, tv_usec: 0), timeval(tv_sec: time(nil) - 100, tv_usec: 0)]
        XCTAssertEqual(utimes(stale, &old), 0)
        let result = ClaimAdoption(spool: spool, lease: lease, stems: stems, outbox: outbox).adoptDead()
        XCTAssertEqual(result.workers.map(\.worker), [dead.description])
        XCTAssert(result.workers[0].reason.contains("last renewed"), result.workers[0].reason)
        XCTAssertEqual(result.claims.map(\.name), ["x.nc"])
        let adopted = result.claims[0]
        XCTAssertEqual(adopted.folder, spool.claimFolder(of: me) + "/.adopted-\(dead)")
        XCTAssertEqual(adopted.attemptCount, 2)
        XCTAssertEqual(read(adopted.path), "input of lost-node")
        XCTAssertEqual(stems.holder("x-lost-node")?.worker, me, "the reservation is handed over")
        XCTAssertEqual(stems.holder("x-busy-node")?.worker, alive)
        XCTAssertFalse(FileManager.default.fileExists(atPath: outbox + "/.x.samples.nc.tmp-\(dead)-123"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: WorkerLease.leasePath(spool, dead)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale), "a lease left half taken")
        XCTAssert(FileManager.default.fileExists(atPath: fresh), "a lease being taken now was removed")
        XCTAssertEqual(read(spool.claimFolder(of: alive) + "/x.nc"), "input of busy-node", "a live worker's claim was taken")
        // the adopted claim is kept under its recorded stem by its new owner
        XCTAssertEqual(try stems.reserve(base: "x", claim: adopted, sha256: "sha") { _ in true }.stem, "x-lost-node")
    }

    /// A dead worker whose claim had finished (no input, only its stem record): the adopter releases
    /// that reservation, but not one of its own claims under the same stem name.
    func testAdoptionReleasesOnlyTheDeadClaimsReservation() throws {
        let (spool, outbox) = try makeSpool()
        let me = WorkerIdentity(host: "adopter", boot: "b0", pid: 10), dead = WorkerIdentity(host: "gone", boot: "b1", pid: 11)
        let lease = try WorkerLease(spool: spool, identity: me, period: 1)
        defer { lease.end(removingLease: true) }
        let stems = StemReservations(outbox: outbox, owner: me)
        let folder = spool.claimFolder(of: dead)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        write("done-one t1\n", folder + "/.a.nc.stem")
        write("\(dead) sha t1\n", outbox + "/.done-one.sbiwatch-stem")
        write("mine t2\n", folder + "/.b.nc.stem")   // the dead claim recorded a stem that a live claim of mine holds
        write("\(me) sha t9\n", outbox + "/.mine.sbiwatch-stem")
        let old = timeval(tv_sec: time(nil) - 100, tv_usec: 0)
        write("period 1\n", WorkerLease.leasePath(spool, dead))
        var times = [old, old]
        XCTAssertEqual(utimes(WorkerLease.leasePath(spool, dead), &times), 0)
        let result = ClaimAdoption(spool: spool, lease: lease, stems: stems, outbox: outbox).adoptDead()
        XCTAssertEqual(result.workers.count, 1)
        XCTAssertEqual(result.claims, [])
        XCTAssertNil(stems.holder("done-one"), "the finished claim's reservation is released")
        XCTAssertEqual(stems.holder("mine")?.token, "t9", "another claim's reservation is kept")
        XCTAssertFalse(FileManager.default.fileExists(atPath: spool.claimFolder(of: me) + "/.adopted-\(dead)"), "the empty adopted folder is removed")
    }

    /// A worker whose lease and folder were taken while it was stalled takes fresh ones.
    func testAStalledWorkerTakesAFreshLease() throws {
        let (spool, _) = try makeSpool()
        let lease = try WorkerLease(spool: spool, period: 1)
        defer { lease.end(removingLease: true) }
        XCTAssertFalse(try lease.ensureStanding())
        unlink(WorkerLease.leasePath(spool, .current))
        XCTAssertEqual(rmdir(spool.claimFolder(of: .current)), 0)
        XCTAssertTrue(try lease.ensureStanding())
        XCTAssert(FileManager.default.fileExists(atPath: WorkerLease.leasePath(spool, .current)))
        XCTAssert(FileManager.default.fileExists(atPath: spool.claimFolder(of: .current)))
        XCTAssertFalse(try lease.ensureStanding())
    }

    /// Flat claims of an earlier single-worker version are adopted with their attempt counts.
    func testLegacyClaimsAreAdopted() throws {
        let (spool, outbox) = try makeSpool()
        let lease = try WorkerLease(spool: spool, period: 1)
        defer { lease.end(removingLease: true) }
        write("old", spool.processing + "/old.nc")
        try FileManager.default.createDirectory(atPath: spool.legacyAttempts, withIntermediateDirectories: true)
        write("1\n", spool.legacyAttempts + "/old.nc")
        let result = ClaimAdoption(spool: spool, lease: lease, stems: StemReservations(outbox: outbox, owner: .current), outbox: outbox).adoptDead()
        XCTAssertEqual(result.claims.map(\.path), [spool.claimFolder(of: .current) + "/old.nc"])
        XCTAssertEqual(result.claims[0].attemptCount, 1)
        XCTAssertEqual(names(spool.legacyAttempts), [])
    }

    /// The commit point: a job seizes its input out of the claim folder; after its folder was
    /// adopted (moved) the seizure fails, so only one of the stalled worker and the adopter commits.
    /// A dead worker's seized inputs are adopted with its committing folder.
    func testSeizureDecidesWhoCommits() throws {
        let (spool, outbox) = try makeSpool()
        let dead = WorkerIdentity(host: "gone", boot: "b1", pid: 11)
        let folder = spool.claimFolder(of: dead), committing = spool.committingFolder(of: dead)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        write("one", folder + "/one.nc"); write("two", folder + "/two.nc")
        let one = ClaimSeizure(claim: Claim(folder: folder, name: "one.nc"), folder: committing)
        XCTAssertTrue(one.seize())
        XCTAssertTrue(one.seize(), "seizing twice is still this job's")
        XCTAssertEqual(one.path, committing + "/one.nc")
        XCTAssertEqual(read(one.path), "one")
        let two = ClaimSeizure(claim: Claim(folder: folder, name: "two.nc"), folder: committing)
        XCTAssertEqual(rename(folder, spool.processing + "/elsewhere"), 0)   // adopted while stalled
        XCTAssertFalse(two.seize())
        XCTAssertEqual(two.path, folder + "/two.nc")
        // the dead worker's committing folder (no lease, no claim folder left) is adopted by the next worker
        let lease = try WorkerLease(spool: spool, identity: WorkerIdentity(host: "next", boot: "b2", pid: 12), period: 1)
        defer { lease.end(removingLease: true) }
        let adopted = ClaimAdoption(spool: spool, lease: lease, stems: StemReservations(outbox: outbox, owner: lease.identity), outbox: outbox).adoptCommitting()
        XCTAssertEqual(adopted.map(\.name), ["one.nc"])
        XCTAssertEqual(read(adopted[0].path), "one")
        XCTAssertEqual(names(spool.committing), [])
    }
}
