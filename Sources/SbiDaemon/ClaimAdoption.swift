// Taking back the claims of dead workers. A worker judged gone (WorkerLease.goneReason) has its
// whole claim folder renamed into the adopter's own, as .adopted-WORKER/: one rename, so of several
// adopters exactly one wins, and the claims, their attempt counts and stem records move together.
// The winner then takes over the dead worker's stem reservations, removes its temporary files and
// its lease, and runs its claims as recovered files. Flat files in processing/ (the layout of
// earlier single-worker versions) are adopted one by one with their attempts/NAME counts.
import Foundation
import SbiCore

struct ClaimAdoption {
    let spool: SpoolFolders
    let lease: WorkerLease
    let stems: StemReservations
    let outbox: String

    static let adoptedPrefix = ".adopted-"
    var myFolder: String { spool.claimFolder(of: lease.identity) }

    /// What one pass adopted: the claims, and one line per dead worker for the log.
    struct Result { var claims: [Claim] = []; var workers: [(worker: String, reason: String)] = [] }

    /// Adopts the claim folders of every worker that is gone, and legacy flat claims.
    func adoptDead() -> Result {
        var result = Result()
        for name in SpoolFolders.subfolders(of: spool.processing) where name != lease.identity.description {
            guard let other = WorkerIdentity.parse(name), let reason = lease.goneReason(other) else { continue }
            let target = myFolder + "/" + Self.adoptedPrefix + name
            guard (try? SpoolFolders.claim(spool.processing + "/" + name, as: target)) == true else { continue }
            result.workers.append((name, reason))
            result.claims += settle(adopted: target, from: other)
        }
        removeAbandonedLeaseTemporaries()
        result.claims += adoptCommitting()
        result.claims += adoptLegacy()
        return result
    }

    /// Inputs a dead worker had seized to commit (it died between the seizure and done/): its
    /// committing folder is adopted whole, like a claim folder, and its inputs run again.
    func adoptCommitting() -> [Claim] {
        var claims: [Claim] = []
        for name in SpoolFolders.subfolders(of: spool.committing) where name != lease.identity.description {
            guard let other = WorkerIdentity.parse(name), lease.goneReason(other) != nil else { continue }
            let target = myFolder + "/" + Self.adoptedPrefix + name + ".committing"
            guard (try? SpoolFolders.claim(spool.committing + "/" + name, as: target)) == true else { continue }
            claims += settle(adopted: target, from: other)
        }
        return claims
    }

    /// After winning `folder` (the claims of `dead`): reservations handed over, leftovers removed,
    /// finished claims' bookkeeping cleared; returns the inputs still to run.
    func settle(adopted folder: String, from dead: WorkerIdentity) -> [Claim] {
        let tree = Self.folders(under: folder)
        let owners = Set([dead] + tree.compactMap { WorkerIdentity.parse(String(URL(fileURLWithPath: $0).lastPathComponent.dropFirst(Self.adoptedPrefix.count))) })
        var claims: [Claim] = []
        for dir in tree {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            let inputs = Set(SpoolFolders.inputs(in: dir))
            for name in names where name.hasPrefix(".") && name.hasSuffix(".stem") {
                let input = String(name.dropFirst().dropLast(5))
                let claim = Claim(folder: dir, name: input)
                guard let r = claim.recordedReservation, stems.takeOver(r, from: owners) else { continue }
                if !inputs.contains(input) { claim.finish(stems) }   // its input was done: the reservation is free
            }
            for name in names where AtomicFile.temporaryOwner(ofName: name) != nil { unlink(dir + "/" + name) }
            claims += inputs.sorted().map { Claim(folder: dir, name: $0) }
        }
        removeTemporaries(of: owners)
        for worker in owners {
            unlink(WorkerLease.leasePath(spool, worker))
            unlink(WorkerLease.probePath(spool, worker))
        }
        Self.removeEmpty(folder, stems: stems)
        return claims
    }

    /// Leases half taken by workers that died before linking them into place (no claim folder of
    /// theirs exists to adopt): removed once older than a lease lives, or at once on this machine.
    func removeAbandonedLeaseTemporaries() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: spool.workers)) ?? [] {
            guard let owner = AtomicFile.temporaryOwner(ofName: name), owner != lease.identity else { continue }
            let path = spool.workers + "/" + name
            if owner.isDeadProcessHere || lease.isOlderThanALease(path) { unlink(path) }
        }
    }

    /// Temporary files of the dead workers: outputs in the outbox, a lease being taken in workers/.
    func removeTemporaries(of owners: Set<WorkerIdentity>) {
        for folder in [outbox, spool.workers] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
                guard let owner = AtomicFile.temporaryOwner(ofName: name), owners.contains(owner) else { continue }
                unlink(folder + "/" + name)
            }
        }
    }

    /// Flat files in processing/ left by an earlier version (no daemon of it runs: we hold STATE/lock shared).
    func adoptLegacy() -> [Claim] {
        var claims: [Claim] = []
        for name in SpoolFolders.inputs(in: spool.processing) {
            let claim = Claim(folder: myFolder, name: SpoolFolders.freeName(name, in: myFolder))
            guard (try? SpoolFolders.claim(spool.processing + "/" + name, as: claim.path)) == true else { continue }
            let legacy = spool.legacyAttempts + "/" + name
            if FileManager.default.fileExists(atPath: legacy) { _ = rename(legacy, claim.attemptsPath) }
            claims.append(claim)
        }
        return claims
    }

    /// `folder` and every adopted folder nested in it.
    static func folders(under folder: String) -> [String] {
        [folder] + SpoolFolders.subfolders(of: folder).filter { $0.hasPrefix(adoptedPrefix) }.flatMap { folders(under: folder + "/" + $0) }
    }

    /// Removes adopted folders under (and including) `folder` that hold no input any more, with the
    /// bookkeeping of inputs that left (their reservations released first).
    static func removeEmpty(_ folder: String, stems: StemReservations) {
        for dir in folders(under: folder).reversed() where SpoolFolders.inputs(in: dir).isEmpty && SpoolFolders.subfolders(of: dir).isEmpty {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix(".") {
                if name.hasSuffix(".stem") { Claim(folder: dir, name: String(name.dropFirst().dropLast(5))).finish(stems) }
                if name.hasSuffix(".attempts") || AtomicFile.temporaryOwner(ofName: name) != nil { unlink(dir + "/" + name) }
            }
            rmdir(dir)
        }
    }
}
