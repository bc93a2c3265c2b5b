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

    /// One running file: its claim, the gate its outputs commit through (open while the claim is
    /// still this worker's), and whether it was recovered after a crash.
    final class Job: @unchecked Sendable {
        let claim: Claim
        let gate: CommitGate
        let recovered: Bool
        var name: String { claim.name }
        init(claim: Claim, recovered: Bool) {
            self.claim = claim; self.recovered = recovered
            let path = claim.path
            gate = CommitGate { FileManager.default.fileExists(atPath: path) }
        }
    }

    private let lock = NSLock()
    private var running: [ObjectIdentifier: Job] = [:]
    private var finished: [(String, Outcome)] = []

    /// Records a job for `claim` as running.
    func start(_ claim: Claim, recovered: Bool) -> Job {
        let job = Job(claim: claim, recovered: recovered)
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
