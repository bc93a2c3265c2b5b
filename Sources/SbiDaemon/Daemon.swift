// Watch mode and cron mode over the spool: claim ready inbox files by rename into processing/,
// run the pipeline on up to `jobs` at once, and move each input to done/ or failed/ once its
// outputs (or its error report) are in the outbox. SIGTERM/SIGINT stop taking files and let the
// current ones finish, or abandon them cleanly back to the inbox after the grace period; SIGHUP
// re-reads the models. After a crash, files left in processing/ are taken again first.
import Dispatch
import Foundation
import Logging
import SbiCore
import SbiPipeline

public struct DaemonOptions: Sendable {
    public var inbox: String
    public var outbox: String
    public var state: String?
    public var once = false
    /// Seconds a file's size and time must stay unchanged before it is taken.
    public var settle: TimeInterval = 2
    /// Seconds between full rescans of the inbox.
    public var rescan: TimeInterval = 30
    public var jobs = 1
    /// Sampling threads per job.
    public var threadsPerJob = 1
    /// Starts of one file after which it is given up as poison.
    public var maxAttempts = 3
    /// Seconds the current files may take to finish after SIGTERM before they are abandoned.
    public var shutdownGrace: TimeInterval = 30
    public var samples: Int?
    public var seed: UInt64?
    public var steps: Int?
    public var useInotify = true

    public init(inbox: String, outbox: String) { self.inbox = inbox; self.outbox = outbox }
}

/// Counts of one run.
public struct DaemonSummary: Sendable {
    public var processed = 0
    public var failed = 0
    public var skipped = 0
    public var abandoned = 0
    public var seconds = 0.0
    public var line: String {
        "processed \(processed), failed \(failed), skipped \(skipped)\(abandoned > 0 ? ", abandoned \(abandoned)" : "") in \(String(format: "%.1f", seconds)) s"
    }
}

public final class Daemon: @unchecked Sendable {
    let options: DaemonOptions
    let spool: SpoolFolders
    let logger: Logger
    let loadCatalog: @Sendable () throws -> ModelCatalog
    private var catalog: ModelCatalog
    private let lock = NSLock()
    private var stopRequested = false
    private var reloadRequested = false
    private var finished: [(String, Outcome)] = []
    private var inFlight: [String: Job] = [:]
    private var stemsInUse = Set<String>()
    private var watcher: InboxWatcher!
    private var signalSources: [DispatchSourceSignal] = []

    enum Outcome { case done(ProcessResult), failed(SbiError), abandoned }
    struct Job { var gate: CommitGate; var recovered: Bool }

    public init(options: DaemonOptions, logger: Logger, loadCatalog: @escaping @Sendable () throws -> ModelCatalog) throws {
        self.options = options; self.logger = logger; self.loadCatalog = loadCatalog
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: options.outbox, isDirectory: &isDir), isDir.boolValue else {
            throw SbiError(.cannotCreate, "the outbox \(options.outbox) is not a folder", hint: "create it first")
        }
        spool = try SpoolFolders(inbox: options.inbox, state: options.state)
        let outbox = URL(fileURLWithPath: options.outbox).resolvingSymlinksInPath().path
        let inbox = URL(fileURLWithPath: spool.inbox).resolvingSymlinksInPath().path
        let state = URL(fileURLWithPath: spool.state).resolvingSymlinksInPath().path
        guard outbox != inbox, !(outbox + "/").hasPrefix(state + "/") else {
            throw SbiError(.configuration, "the outbox \(options.outbox) is the inbox or inside the state folder; outputs would be taken as inputs",
                           hint: "give the outputs a folder of their own")
        }
        var a = stat(), b = stat()
        guard stat(spool.inbox, &a) == 0, stat(spool.state, &b) == 0, a.st_dev == b.st_dev else {
            throw SbiError(.configuration, "the state folder \(spool.state) is not on the filesystem of the inbox \(spool.inbox), so files cannot be claimed by rename",
                           hint: "put --state on the inbox's filesystem (the default is INBOX/.sbiwatch)")
        }
        catalog = try loadCatalog()
        try catalog.loadAll()
    }

    /// Runs until the inbox is drained (--once) or a stop signal; returns the counts.
    public func run() throws -> DaemonSummary {
        let instance = try InstanceLock(path: spool.lockFile, inbox: spool.inbox)
        defer { withExtendedLifetime(instance) {} }
        let start = Date()
        watcher = InboxWatcher(inbox: spool.inbox, settle: options.settle, useInotify: options.useInotify)
        installSignalHandlers()
        defer { for s in signalSources { s.cancel() } }
        logger.info("start", metadata: ["inbox": "\(spool.inbox)", "outbox": "\(options.outbox)", "models": "\(catalog.names.joined(separator: ","))",
                                        "jobs": "\(options.jobs)", "mode": "\(options.once ? "once" : "watch")", "inotify": "\(watcher.usesInotify)"])
        removeStaleTemporaryFiles()
        var summary = DaemonSummary()
        var queue = recoverProcessing(&summary)     // names in processing/ to run again, first
        var lastRescan = Date.distantPast
        var stopDeadline: Date? = nil
        let drainDeadline = Date().addingTimeInterval(options.settle + watcher.invalidGrace + 1)

        while true {
            let now = Date()
            // results of finished jobs
            lock.lock(); let results = finished; finished.removeAll(); let stopping = stopRequested
            let reload = reloadRequested; reloadRequested = false; lock.unlock()
            for (name, outcome) in results { account(name, outcome, &summary) }
            if reload { reloadModels() }
            if stopping && stopDeadline == nil {
                stopDeadline = now.addingTimeInterval(options.shutdownGrace)
                logger.info("stopping", metadata: ["in_flight": "\(inFlightCount)", "grace_seconds": "\(options.shutdownGrace)"])
            }
            if let deadline = stopDeadline {
                if inFlightCount == 0 { break }
                if now >= deadline { abandonInFlight(&summary); break }
                watcher.wait(timeout: min(0.2, deadline.timeIntervalSince(now)))
                continue
            }
            // take what is ready
            var settling: [String] = []
            if queue.isEmpty || now.timeIntervalSince(lastRescan) >= 0.2 {
                let scan = watcher.scan(now: now)
                settling = scan.settling
                for name in scan.ready where !queue.contains(where: { $0.name == name && !$0.recovered }) {
                    queue.append((name, false))
                }
                lastRescan = now
            }
            // files recovered after a crash run one at a time, so a file that crashes the process
            // cannot use up the attempts of the files that happened to run beside it
            while !queue.isEmpty, inFlightCount < (queue[0].recovered || recoveredRunning ? 1 : options.jobs) {
                let item = queue.removeFirst()
                if item.recovered { dispatch(item.name, recovered: true) } else if let claimed = claim(item.name) { dispatch(claimed) }
            }
            if options.once && queue.isEmpty && inFlightCount == 0 && pendingResults == 0 {
                if settling.isEmpty { break }
                if now >= drainDeadline {
                    summary.skipped = settling.count
                    for name in settling { logger.warning("skipped", metadata: ["file": "\(name)", "reason": "still being written or not yet valid NetCDF"]) }
                    break
                }
            }
            let busy = inFlightCount > 0 || !settling.isEmpty || !queue.isEmpty
            watcher.wait(timeout: busy ? min(0.25, options.rescan) : options.rescan)
        }
        // outcomes that arrived after the last look
        lock.lock(); let late = finished; finished.removeAll(); lock.unlock()
        for (name, outcome) in late { account(name, outcome, &summary) }
        summary.seconds = Date().timeIntervalSince(start)
        logger.info("stop", metadata: ["processed": "\(summary.processed)", "failed": "\(summary.failed)", "skipped": "\(summary.skipped)",
                                       "abandoned": "\(summary.abandoned)", "seconds": "\(String(format: "%.1f", summary.seconds))"])
        return summary
    }

    private var inFlightCount: Int { lock.lock(); defer { lock.unlock() }; return inFlight.count }
    private var pendingResults: Int { lock.lock(); defer { lock.unlock() }; return finished.count }
    private var recoveredRunning: Bool { lock.lock(); defer { lock.unlock() }; return inFlight.values.contains { $0.recovered } }

    // MARK: - claiming and running

    /// Moves an inbox file into processing/; nil when it vanished meanwhile.
    private func claim(_ name: String) -> String? {
        watcher.taken(name)
        let target = SpoolFolders.freeName(name, in: spool.processing)
        do {
            try SpoolFolders.move(spool.inbox + "/" + name, spool.processing + "/" + target)
            return target
        } catch {
            logger.warning("claim failed", metadata: ["file": "\(name)", "error": "\(error)"])
            return nil
        }
    }

    private func dispatch(_ name: String, recovered: Bool = false) {
        let job = Job(gate: CommitGate(), recovered: recovered)
        lock.lock(); inFlight[name] = job; lock.unlock()
        let catalog = currentCatalog
        Thread.detachNewThread { [self] in
            let outcome = runJob(name, gate: job.gate, catalog: catalog)
            lock.lock()
            // the name may already belong to a newer file claimed after this one moved on
            if inFlight[name]?.gate === job.gate { inFlight[name] = nil }
            finished.append((name, outcome))
            lock.unlock()
            watcher.wake()
        }
    }

    private var currentCatalog: ModelCatalog { lock.lock(); defer { lock.unlock() }; return catalog }

    private func runJob(_ name: String, gate: CommitGate, catalog: ModelCatalog) -> Outcome {
        let path = spool.processing + "/" + name
        let spool = self.spool
        do {
            let attempt = try spool.recordAttempt(name)
            logger.debug("taken", metadata: ["file": "\(name)", "attempt": "\(attempt)"])
            let sha = try Pipeline.sha256(ofFile: path)
            let stem = reserveStem(for: name, sha256: sha)
            defer { releaseStem(stem) }
            var opts = ProcessOptions(outbox: options.outbox, samples: options.samples, seed: options.seed, threads: options.threadsPerJob,
                                      stem: stem, gate: gate)
            opts.steps = options.steps
            opts.afterCommit = {
                try SpoolFolders.move(path, spool.done + "/" + SpoolFolders.freeName(name, in: spool.done))
                spool.clearAttempts(name)
            }
            do {
                return .done(try Pipeline.process(file: path, catalog: catalog, options: opts))
            } catch {
                var e = (error as? SbiError) ?? SbiError(.internalError, "\(name): \(error)")
                // name the file as it arrived, not by its place in the state folder
                e.message = e.message.replacingOccurrences(of: spool.processing + "/", with: "")
                let ran = try gate.perform {
                    // the error report first: an input is in failed/ only with its report in the outbox
                    try Pipeline.writeError(e, file: path, outbox: options.outbox, created: Pipeline.creationDate(), stem: stem, inputSHA256: sha)
                    try SpoolFolders.move(path, spool.failed + "/" + SpoolFolders.freeName(name, in: spool.failed))
                    spool.clearAttempts(name)
                }
                return ran ? .failed(e) : .abandoned
            }
        } catch {
            // the spool itself failed (disk full, permissions): leave the file in processing/ for the next start
            let e = (error as? SbiError) ?? SbiError(.ioError, "\(name): \(error)")
            logger.error("spool error", metadata: ["file": "\(name)", "error": "\(e.message)"])
            return .failed(e)
        }
    }

    /// Output names for a file: its stem, or STEM.1, STEM.2, ... when outputs of a different input
    /// already use it. Outputs of the same input (an earlier, interrupted attempt) are replaced.
    private func reserveStem(for name: String, sha256: String) -> String {
        lock.lock(); defer { lock.unlock() }
        let base = Pipeline.stem(of: name)
        var k = 0
        while true {
            let stem = k == 0 ? base : "\(base).\(k)"
            k += 1
            guard !stemsInUse.contains(stem) else { continue }
            switch OutputOwner.sha256(stem: stem, outbox: options.outbox) {
            case .none: break
            case .some(let owner) where owner == sha256: break
            default:
                logger.warning("name clash", metadata: ["file": "\(name)", "existing": "\(stem)", "reason": "outputs of another input use this name"])
                continue
            }
            stemsInUse.insert(stem)
            return stem
        }
    }

    private func releaseStem(_ stem: String) { lock.lock(); stemsInUse.remove(stem); lock.unlock() }

    private func account(_ name: String, _ outcome: Outcome, _ summary: inout DaemonSummary) {
        switch outcome {
        case .done(let r):
            summary.processed += 1
            logger.info("done", metadata: ["file": "\(name)", "model": "\(r.modelName)", "outcome": "done", "stem": "\(r.stem)",
                                           "samples": "\(r.samples)", "warnings": "\(r.warnings)", "duration": "\(String(format: "%.2f", r.seconds))s"])
        case .failed(let e):
            summary.failed += 1
            logger.error("failed", metadata: ["file": "\(name)", "outcome": "failed", "code": "\(e.code.rawValue)", "error": "\(e.message)"])
        case .abandoned:
            summary.abandoned += 1
        }
    }

    // MARK: - crash recovery, shutdown

    /// Files left in processing/ by a crash: taken again, unless they were started maxAttempts times.
    private func recoverProcessing(_ summary: inout DaemonSummary) -> [(name: String, recovered: Bool)] {
        var again: [(name: String, recovered: Bool)] = []
        for name in SpoolFolders.inputs(in: spool.processing) {
            let attempts = spool.attemptCount(name)
            if attempts >= options.maxAttempts {
                let path = spool.processing + "/" + name
                let e = SbiError(.badInput, "\(name): sbiwatch stopped \(attempts) times while processing this file; it is set aside as a poison file",
                                 hint: "check the file (and the logs of those runs); to try again, move it from \(spool.failed) back into the inbox")
                let sha = (try? Pipeline.sha256(ofFile: path)) ?? ""
                let stem = reserveStem(for: name, sha256: sha)
                defer { releaseStem(stem) }
                let reported = (try? Pipeline.writeError(e, file: path, outbox: options.outbox, created: Pipeline.creationDate(), stem: stem)) != nil
                if reported, (try? SpoolFolders.move(path, spool.failed + "/" + SpoolFolders.freeName(name, in: spool.failed))) != nil {
                    spool.clearAttempts(name)
                    summary.failed += 1
                    logger.error("poison", metadata: ["file": "\(name)", "attempts": "\(attempts)", "outcome": "failed"])
                }
            } else {
                logger.info("recovered", metadata: ["file": "\(name)", "attempts": "\(attempts)"])
                again.append((name, true))
            }
        }
        return again
    }

    /// Closes the gates of unfinished files and puts them back into the inbox.
    private func abandonInFlight(_ summary: inout DaemonSummary) {
        lock.lock(); let jobs = inFlight; lock.unlock()
        for (name, job) in jobs {
            job.gate.close()
            lock.lock(); let stillRunning = inFlight[name] != nil; lock.unlock()
            // a job that committed before the gate closed has moved its input already
            let path = spool.processing + "/" + name
            guard stillRunning, FileManager.default.fileExists(atPath: path) else { continue }
            let back = SpoolFolders.freeName(name, in: spool.inbox)
            if (try? SpoolFolders.move(path, spool.inbox + "/" + back)) != nil {
                spool.clearAttempts(name)
                summary.abandoned += 1
                logger.warning("abandoned", metadata: ["file": "\(name)", "outcome": "returned to the inbox", "returned_as": "\(back)"])
            }
        }
        removeOwnTemporaryFiles()
    }

    /// Temporary outputs (".NAME.tmp-PID-N") of processes that no longer run.
    private func removeStaleTemporaryFiles() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: options.outbox)) ?? [] {
            guard let pid = AtomicFile.temporaryOwner(ofName: name), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            unlink(options.outbox + "/" + name)
            logger.info("removed stale temporary file", metadata: ["file": "\(name)"])
        }
    }

    private func removeOwnTemporaryFiles() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: options.outbox)) ?? [] where AtomicFile.temporaryOwner(ofName: name) == getpid() {
            unlink(options.outbox + "/" + name)
        }
    }

    // MARK: - signals and configuration

    private func installSignalHandlers() {
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                self.lock.lock()
                if sig == SIGHUP { self.reloadRequested = true } else { self.stopRequested = true }
                self.lock.unlock()
                self.watcher.wake()
            }
            source.resume()
            signalSources.append(source)
        }
    }

    private func reloadModels() {
        do {
            let fresh = try loadCatalog()
            try fresh.loadAll()
            lock.lock(); catalog = fresh; lock.unlock()
            logger.info("reloaded models", metadata: ["models": "\(fresh.names.joined(separator: ","))"])
        } catch {
            logger.error("reload failed; keeping the models loaded before", metadata: ["error": "\(error)"])
        }
    }
}

/// Which input the outputs under a stem were made from (its SHA-256), if any outputs exist.
enum OutputOwner {
    enum Owner: Equatable { case none, some(String), unknown }

    static func sha256(stem: String, outbox: String) -> Owner {
        let paths = Pipeline.outputPaths(stem: stem, outbox: outbox)
        let existing = [paths.json, paths.error, paths.samples, paths.html].filter { FileManager.default.fileExists(atPath: $0) }
        guard !existing.isEmpty else { return .none }
        for p in [paths.json, paths.error] {
            guard let d = FileManager.default.contents(atPath: p),
                  let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { continue }
            if let s = (o["input"] as? [String: Any])?["sha256"] as? String { return .some(s) }
            if let s = o["input_sha256"] as? String { return .some(s) }
        }
        if let r = try? SamplesFileOwner.sha256(paths.samples) { return .some(r) }
        return .unknown
    }
}
