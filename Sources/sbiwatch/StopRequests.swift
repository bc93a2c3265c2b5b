// Stop requests for long training runs (train, bench --accuracy): save, then stop.
import Foundation
import SbiCore

/// SIGINT/SIGTERM/SIGHUP while a training run with a checkpoint is going (armed): the first asks it
/// to save its state and stop after the current step; a second ends the process at once (removing
/// a half-written checkpoint). When no run is armed, a signal ends the process at once.
final class StopRequests: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private var armedCheckpoint: String?
    private var sources: [DispatchSourceSignal] = []

    var requested: Bool { lock.lock(); defer { lock.unlock() }; return count > 0 }

    /// Runs `body` with stop requests going to a training run that checkpoints to `path`.
    func armed<T>(checkpoint path: String, _ body: () throws -> T) rethrows -> T {
        lock.lock(); armedCheckpoint = path; count = 0; lock.unlock()
        defer { lock.lock(); armedCheckpoint = nil; lock.unlock() }
        return try body()
    }

    static func install() -> StopRequests {
        let stop = StopRequests()
        signal(SIGPIPE, SIG_IGN)
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { stop.received(sig) }
            source.resume()
            stop.sources.append(source)
        }
        return stop
    }

    private func received(_ sig: Int32) {
        lock.lock(); count += 1; let n = count; let path = armedCheckpoint; lock.unlock()
        guard let path else { _exit(128 + sig) }
        if n == 1 {
            stderrLine("stopping after this step; saving the training state (signal again to quit without saving)")
            return
        }
        AtomicFile.removeTemporaries(of: path)  // a save may be under way
        _exit(128 + sig)
    }
}
