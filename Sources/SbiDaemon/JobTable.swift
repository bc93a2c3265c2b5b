// The daemon's table of jobs: which claimed files are running and which have finished and wait to
// be counted (output stems are reserved on disk, by StemReservations). One lock guards it, and its
// invariants hold at every call's end:
// - every job is its own entry (a file claimed under the name of one whose input has just moved
//   on is a second entry, so neither hides the other);
// - every started job finishes exactly once, and its outcome is handed out exactly once.
import Foundation
import SbiCore
import SbiPipeline

final class JobTable: @unchecked Sendable {
    /// `unreported`: why the error report could not be written, when it could not.
    /// `returned`: put back into the inbox (the machine's fault, not the file's).
    /// `lost`: the claim was adopted by another worker while this one was stalled; its outputs were discarded.
    enum Outcome { case done(ProcessResult), failed(SbiError, unreported: SbiError?), abandoned, returned(SbiError), lost }

    /// One running file: its claim, the gate its outputs commit through (it opens only once the
    /// input is seized out of the adoptable claim folder, see `ClaimSeizure`), and whether it was
    /// recovered after a crash.
    final class Job: @unchecked Sendable {
        let claim: Claim
        let seizure: ClaimSeizure
        let gate: CommitGate
        let recovered: Bool
        var name: String { claim.name }
        /// Where the input is now.
        var path: String { seizure.path }
        init(claim: Claim, recovered: Bool, committing: String) {
            self.claim = claim; self.recovered = recovered
            let seizure = ClaimSeizure(claim: claim, folder: committing)
            self.seizure = seizure
            gate = CommitGate { seizure.seize() }
        }
    }

    private let lock = NSLock()
    private var running: [ObjectIdentifier: Job] = [:]
    private var finished: [(String, Outcome)] = []

    /// Records a job for `claim` as running; it seizes its input into `committing` before committing.
    func start(_ claim: Claim, recovered: Bool, committing: String) -> Job {
        let job = Job(claim: claim, recovered: recovered, committing: committing)
        lock.lock(); running[ObjectIdentifier(job)] = job; lock.unlock()
        return job
    }

    /// Records the outcome of `job`; it stops counting as running.
    func finish(_ job: Job, _ outcome: Outcome) {
        lock.lock(); defer { lock.unlock() }
        running[ObjectIdentifier(job)] = nil
        finished.append((job.name, outcome))
    }

    /// The outcomes recorded since the last call, in the order they arrived.
    func takeFinished() -> [(String, Outcome)] {
        lock.lock(); defer { lock.unlock() }
        let out = finished
        finished.removeAll()
        return out
    }

    var runningCount: Int { lock.lock(); defer { lock.unlock() }; return running.count }
    var unaccountedCount: Int { lock.lock(); defer { lock.unlock() }; return finished.count }
    var recoveredRunning: Bool { lock.lock(); defer { lock.unlock() }; return running.values.contains { $0.recovered } }
    var runningJobs: [Job] { lock.lock(); defer { lock.unlock() }; return Array(running.values) }
    func isRunning(_ job: Job) -> Bool { lock.lock(); defer { lock.unlock() }; return running[ObjectIdentifier(job)] != nil }
}

/// The commit point of a claimed file: its input renamed out of the claim folder (which another
/// worker may adopt whole while this one stalls) into STATE/committing/WORKER/. Of a stalled worker
/// and the adopter, exactly one rename succeeds, also where NFS still resolves the moved folder
/// through a cached handle; the loser gets ENOENT and discards its outputs.
final class ClaimSeizure: @unchecked Sendable {
    let claim: Claim
    let folder: String
    private let lock = NSLock()
    private var seized: String?

    init(claim: Claim, folder: String) { self.claim = claim; self.folder = folder }

    /// The input's path: in the claim folder, or in the committing folder once seized.
    var path: String { lock.lock(); defer { lock.unlock() }; return seized ?? claim.path }

    /// Moves the input into the committing folder; true when it is (or already was) this job's.
    func seize() -> Bool {
        lock.lock(); defer { lock.unlock() }
        if seized != nil { return true }
        if mkdir(folder, 0o755) != 0 && errno != EEXIST { return false }
        let target = folder + "/" + SpoolFolders.freeName(claim.name, in: folder)
        guard (try? SpoolFolders.claim(claim.path, as: target)) == true else { return false }
        seized = target
        return true
    }
}
