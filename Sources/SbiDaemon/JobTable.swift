// The daemon's table of jobs: which claimed files are running, which have finished and wait to be
// counted, and which output stems are reserved. One lock guards it, and its invariants hold at
// every call's end:
// - every job is its own entry (a file claimed under the name of one whose input has just moved
//   on is a second entry, so neither hides the other);
// - every started job finishes exactly once, and its outcome is handed out exactly once;
// - a stem is reserved by at most one job, until it is released.
import Foundation
import SbiCore
import SbiPipeline

final class JobTable: @unchecked Sendable {
    /// `unreported`: why the error report could not be written, when it could not.
    /// `returned`: put back into the inbox (the machine's fault, not the file's).
    enum Outcome { case done(ProcessResult), failed(SbiError, unreported: SbiError?), abandoned, returned(SbiError) }

    /// One running file: the gate its outputs commit through, and whether it was recovered after a crash.
    final class Job: @unchecked Sendable {
        let name: String
        let gate = CommitGate()
        let recovered: Bool
        init(name: String, recovered: Bool) { self.name = name; self.recovered = recovered }
    }

    private let lock = NSLock()
    private var running: [ObjectIdentifier: Job] = [:]
    private var finished: [(String, Outcome)] = []
    private var stems = Set<String>()

    /// Records a job for `name` as running.
    func start(_ name: String, recovered: Bool) -> Job {
        let job = Job(name: name, recovered: recovered)
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

    /// The first of BASE, BASE.1, BASE.2, ... that no job holds and `isFree` accepts; reserved until released.
    func reserveStem(base: String, isFree: (String) -> Bool) -> String {
        lock.lock(); defer { lock.unlock() }
        var k = 0
        while true {
            let stem = k == 0 ? base : "\(base).\(k)"
            k += 1
            guard !stems.contains(stem), isFree(stem) else { continue }
            stems.insert(stem)
            return stem
        }
    }

    func releaseStem(_ stem: String) { lock.lock(); stems.remove(stem); lock.unlock() }
    func isReserved(_ stem: String) -> Bool { lock.lock(); defer { lock.unlock() }; return stems.contains(stem) }
}
