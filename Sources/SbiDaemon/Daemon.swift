// Watch mode and cron mode over the spool, as one of any number of workers sharing it: claim ready
// inbox files by rename into this worker's processing/WORKER/, run the pipeline on up to `jobs` at
// once, and move each input to done/ or failed/ once its outputs (or its error report) are in the
// outbox. SIGTERM/SIGINT stop taking files and let the current ones finish, or abandon them cleanly
// back to the inbox after the grace period; SIGHUP re-reads the models. The claims of workers that
// died (a crash, a lost host) are adopted and taken again first, one at a time.
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
    /// Seconds between renewals of this worker's lease; others adopt its claims once it is 3 periods old.
    public var leasePeriod: TimeInterval = 10
    /// Seconds the current files may take to finish after SIGTERM before they are abandoned.
    public var shutdownGrace: TimeInterval = 30
    /// --samples, --seed, --steps for every file.
    public var overrides = SamplingOverrides()
    public var useInotify = true
    /// How unclaimed files are checked to open as NetCDF (the command line uses a child process).
    public var probe: FileProbe = .netCDFInProcess

    public init(inbox: String, outbox: String) { self.inbox = inbox; self.outbox = outbox }
}

/// Counts of one run.
public struct DaemonSummary: Sendable {
    public var processed = 0
    public var failed = 0
    public var skipped = 0
    public var abandoned = 0
    /// Files put back into the inbox because of the machine (outputs not writable, a test read not started).
    public var returned = 0
    public var seconds = 0.0
    /// The first output or spool error of the run (an error report that could not be written):
    /// its exit status (73, 74) is the run's.
    public var outputFailure: SbiError? = nil

    mutating func noteOutputFailure(_ e: SbiError) { if outputFailure == nil { outputFailure = e } }

    /// --once: 0 when every file succeeded; the output failure's status when one happened; 65 when
    /// any file failed; 75 when some were still being written.
    public var exitStatus: Int32 {
        if let outputFailure { return outputFailure.exitStatus }
        return failed > 0 ? 65 : skipped + returned > 0 ? 75 : 0
    }
    public var line: String {
        "processed \(processed), failed \(failed), skipped \(skipped)\(returned > 0 ? ", returned \(returned)" : "")\(abandoned > 0 ? ", abandoned \(abandoned)" : "") in \(String(format: "%.1f", seconds)) s"
    }
}

public final class Daemon: @unchecked Sendable {
    let options: DaemonOptions
    let spool: SpoolFolders
    let logger: Logger
    let loadCatalog: @Sendable () throws -> ModelCatalog
    private let jobs = JobTable()
    /// Guards the catalog and the signal requests.
    private let lock = NSLock()
    private var catalog: ModelCatalog
    private var stopRequested = false
    private var reloadRequested = false
    private var watcher: InboxWatcher!
    private var signalSources: [DispatchSourceSignal] = []
    private var lease: WorkerLease!
    private let stems: StemReservations
    private var myFolder: String { spool.claimFolder(of: .current) }

    /// One file waiting to be run: a ready inbox file (to claim), or an adopted claim (recovered).
    struct Pending {
        var name: String
        var adopted: Claim?
        var recovered: Bool { adopted != nil }
    }

    /// The state of one run of the main loop.
    struct Loop {
        var summary = DaemonSummary()
        var queue: [Pending] = []
        var settling: [String] = []
        var stopDeadline: Date? = nil
        let drainDeadline: Date
        /// After an output failure (a full or read-only outbox) no file is claimed until then;
        /// with --once, none at all any more.
        var claimsPausedUntil: Date? = nil
        /// When the claims of dead workers are looked for next.
        var nextAdoption = Date.distantPast
    }

    public init(options: DaemonOptions, logger: Logger, loadCatalog: @escaping @Sendable () throws -> ModelCatalog) throws {
        self.options = options; self.logger = logger; self.loadCatalog = loadCatalog
        stems = StemReservations(outbox: options.outbox, owner: .current)
        try OutputSet.checkOutbox(options.outbox)
        spool = try SpoolFolders(inbox: options.inbox, state: options.state)
        try Self.checkPlacement(outbox: options.outbox, spool: spool)
        catalog = try loadCatalog()
        try catalog.loadAll()
    }

    /// The outbox apart from the inbox and the state folder; the state folder on the inbox's filesystem.
    private static func checkPlacement(outbox given: String, spool: SpoolFolders) throws {
        let outbox = URL(fileURLWithPath: given).resolvingSymlinksInPath().path
        let inbox = URL(fileURLWithPath: spool.inbox).resolvingSymlinksInPath().path
        let state = URL(fileURLWithPath: spool.state).resolvingSymlinksInPath().path
        guard outbox != inbox, !(outbox + "/").hasPrefix(state + "/") else {
            throw SbiError(.configuration, "the outbox \(given) is the inbox or inside the state folder; outputs would be taken as inputs",
                           hint: "give the outputs a folder of their own")
        }
        var a = stat(), b = stat()
        guard stat(spool.inbox, &a) == 0, stat(spool.state, &b) == 0, a.st_dev == b.st_dev else {
            throw SbiError(.configuration, "the state folder \(spool.state) is not on the filesystem of the inbox \(spool.inbox), so files cannot be claimed by rename",
                           hint: "put --state on the inbox's filesystem (the default is INBOX/.sbiwatch)")
        }
    }

    /// Runs until the inbox is drained (--once) or a stop signal; returns the counts.
    public func run() throws -> DaemonSummary {
        lease = try WorkerLease(spool: spool, period: options.leasePeriod)
        defer { endLease() }
        let start = Date()
        watcher = InboxWatcher(inbox: spool.inbox, settle: options.settle, useInotify: options.useInotify, probe: options.probe)
        installSignalHandlers()
        defer { for s in signalSources { s.cancel() } }
        logger.info("start", metadata: ["inbox": "\(spool.inbox)", "outbox": "\(options.outbox)", "models": "\(currentCatalog.names.joined(separator: ","))",
                                        "models_file": "\(currentCatalog.modelsFile ?? "-")",
                                        "jobs": "\(options.jobs)", "mode": "\(options.once ? "once" : "watch")", "inotify": "\(watcher.usesInotify)",
                                        "worker": "\(WorkerIdentity.current)"])
        removeStaleTemporaryFiles()
        var loop = Loop(drainDeadline: Date().addingTimeInterval(options.settle + watcher.invalidGrace + 1))
        adoptIfDue(&loop, now: Date())     // claims of dead workers run again, first
        while step(&loop) {}
        // outcomes that arrived after the last look
        accountFinished(&loop)
        loop.summary.seconds = Date().timeIntervalSince(start)
        let s = loop.summary
        logger.info("stop", metadata: ["processed": "\(s.processed)", "failed": "\(s.failed)", "skipped": "\(s.skipped)",
                                       "abandoned": "\(s.abandoned)", "seconds": "\(String(format: "%.1f", s.seconds))"])
        return s
    }

    /// One turn of the main loop: count what finished, honour signals, take what is ready, then
    /// sleep until something can change (an inbox event, a finished job, a signal, a file's settle
    /// time or the rescan). Returns false when the run is over.
    private func step(_ loop: inout Loop) -> Bool {
        let now = Date()
        accountFinished(&loop)
        let (stopping, reload) = takeRequests()
        if reload { reloadModels() }
        if stopping && loop.stopDeadline == nil {
            loop.stopDeadline = now.addingTimeInterval(options.shutdownGrace)
            logger.info("stopping", metadata: ["in_flight": "\(jobs.runningCount)", "grace_seconds": "\(options.shutdownGrace)"])
        }
        if let deadline = loop.stopDeadline {
            if jobs.runningCount == 0 { return false }
            if now >= deadline { abandonInFlight(&loop.summary); return false }
            watcher.wait(timeout: deadline.timeIntervalSince(now))
            return true
        }
        adoptIfDue(&loop, now: now)
        takeReady(&loop, now: now)
        if options.once && loop.queue.isEmpty && jobs.runningCount == 0 && jobs.unaccountedCount == 0 {
            if loop.settling.isEmpty || loop.claimsPausedUntil != nil { return false }
            if now >= loop.drainDeadline {
                loop.summary.skipped = loop.settling.count
                for name in loop.settling { logger.warning("skipped", metadata: ["file": "\(name)", "reason": "still being written or not yet valid NetCDF"]) }
                return false
            }
        }
        var timeout = min(options.rescan, max(0.01, loop.nextAdoption.timeIntervalSinceNow))
        if let due = watcher.secondsToNextCheck(now: Date()) { timeout = min(timeout, due + 0.01) }
        if let paused = loop.claimsPausedUntil { timeout = min(timeout, max(0.01, paused.timeIntervalSinceNow)) }
        if options.once && !loop.settling.isEmpty { timeout = min(timeout, max(0.01, loop.drainDeadline.timeIntervalSinceNow)) }
        watcher.wait(timeout: timeout)
        return true
    }

    /// Scans the inbox and starts what is ready, as far as the job limit allows. Files recovered
    /// after a crash run one at a time, so a file that crashes the process cannot use up the
    /// attempts of the files that happened to run beside it.
    private func takeReady(_ loop: inout Loop, now: Date) {
        let scan = watcher.scan(now: now)
        loop.settling = scan.settling
        if let paused = loop.claimsPausedUntil {
            // --once: what is left stays in the inbox for the next run
            if options.once { loop.queue.removeAll { !$0.recovered }; return }
            guard now >= paused else { return }
            loop.claimsPausedUntil = nil
        }
        for name in scan.ready where !loop.queue.contains(where: { $0.name == name && !$0.recovered }) {
            loop.queue.append(Pending(name: name, adopted: nil))
        }
        while let next = loop.queue.first, jobs.runningCount < (next.recovered || jobs.recoveredRunning ? 1 : options.jobs) {
            loop.queue.removeFirst()
            if let adopted = next.adopted { dispatch(adopted, recovered: true) } else if let claimed = claim(next.name) { dispatch(claimed, recovered: false) }
        }
    }

    private func takeRequests() -> (stop: Bool, reload: Bool) {
        lock.lock(); defer { lock.unlock() }
        let reload = reloadRequested
        reloadRequested = false
        return (stopRequested, reload)
    }

    private func accountFinished(_ loop: inout Loop) {
        for (name, outcome) in jobs.takeFinished() { account(name, outcome, &loop) }
    }

    // MARK: - claiming and running

    /// Moves an inbox file into this worker's claim folder; nil when another worker (or the user) took it first.
    private func claim(_ name: String) -> Claim? {
        watcher.taken(name)
        do {
            try standFirm()
            let claim = Claim(folder: myFolder, name: SpoolFolders.freeName(name, in: myFolder))
            guard try SpoolFolders.claim(spool.inbox + "/" + name, as: claim.path) else {
                logger.debug("claimed elsewhere", metadata: ["file": "\(name)"])
                return nil
            }
            return claim
        } catch {
            logger.warning("claim failed", metadata: ["file": "\(name)", "error": "\(error)"])
            return nil
        }
    }

    private func dispatch(_ claim: Claim, recovered: Bool) {
        let job = jobs.start(claim, recovered: recovered, committing: spool.committingFolder(of: .current))
        let catalog = currentCatalog
        Thread.detachNewThread { [self] in
            jobs.finish(job, runJob(job, catalog: catalog))
            watcher.wake()
        }
    }

    private var currentCatalog: ModelCatalog { lock.lock(); defer { lock.unlock() }; return catalog }

    private func runJob(_ job: JobTable.Job, catalog: ModelCatalog) -> JobTable.Outcome {
        let name = job.name, claim = job.claim, path = claim.path, seizure = job.seizure
        do {
            let attempt = try claim.recordAttempt()
            logger.debug("taken", metadata: ["file": "\(name)", "attempt": "\(attempt)"])
            // an input that cannot be read (permissions, not a file) fails like a bad one
            let digest = Result { try InputFile.sha256(ofFile: path) }.mapError { e -> any Error in (e as? SbiError)?.about(name) ?? e }
            // an outbox that cannot take even a reservation (full, failing): the file is still read, so a
            // bad one fails as it would, but no output of it is written
            var unreserved: SbiError? = nil, reservation: StemReservation? = nil
            do { reservation = try reserveStem(for: claim, sha256: (try? digest.get()) ?? "") } catch {
                unreserved = (error as? SbiError) ?? SbiError(.ioError, "\(error)")
            }
            let stem = reservation?.stem ?? Pipeline.stem(of: claim.name)
            defer { if let reservation { stems.release(reservation) } }
            var opts = ProcessOptions(outbox: options.outbox, overrides: options.overrides, threads: options.threadsPerJob)
            opts.stem = stem; opts.gate = unreserved == nil ? job.gate : CommitGate { false }
            opts.displayName = name; opts.inputSHA256 = try? digest.get()
            if case .executable = options.probe { opts.probe = options.probe }
            let spool = self.spool, stems = self.stems
            opts.afterCommit = {
                try SpoolFolders.publish(seizure.path, into: spool.done, as: name)
                claim.finish(stems)
            }
            do {
                _ = try digest.get()
                return .done(try Pipeline.process(file: path, catalog: catalog, options: opts))
            } catch let failure as OutputStageFailure {
                return try putBack(job, failure.error)   // the outbox's fault: try the file again later
            } catch let e as SbiError where e.code == .temporary {
                return try putBack(job, unreserved ?? e)
            } catch {
                return try fail(job, error, options: opts, unreserved: unreserved)
            }
        } catch {
            // the spool itself failed (disk full, permissions): leave the file in processing/ for the next start
            let e = (error as? SbiError) ?? SbiError(.ioError, "\(error)", subject: name)
            logger.error("spool error", metadata: ["file": "\(name)", "error": "\(e.text)"])
            return .failed(e, unreported: e)
        }
    }

    /// A file that could not be processed: its error report into the outbox, then the input into
    /// failed/; unless the gate closed. When the report itself cannot be written (a full or
    /// read-only outbox) the input still goes to failed/, the reason is logged, and the run's exit
    /// status names that cause.
    private func fail(_ job: JobTable.Job, _ error: Error, options opts: ProcessOptions, unreserved: SbiError?) throws -> JobTable.Outcome {
        let e = (error as? SbiError) ?? SbiError(.internalError, "\(error)", subject: job.name)
        var unreported: SbiError? = nil
        let ran = try job.gate.perform {
            unreported = setAside(job.claim, at: job.path, e, options: opts, unreserved: unreserved)
        }
        return ran ? .failed(e, unreported: unreported) : lostOrAbandoned(job)
    }

    /// A job whose gate would not open: closed for shutdown, or the claim adopted by another worker
    /// while this one was stalled (its outputs are discarded; the adopter runs the file).
    private func lostOrAbandoned(_ job: JobTable.Job) -> JobTable.Outcome {
        guard !job.gate.isClosedByCaller, !FileManager.default.fileExists(atPath: job.path) else { return .abandoned }
        logger.warning("claim lost", metadata: ["file": "\(job.name)", "outcome": "adopted by another worker while this one was stalled; outputs discarded"])
        return .lost
    }

    /// A good file that could not be finished for a reason of the machine (its outputs could not be
    /// written, a test read could not start): back into the inbox, unless the gate closed.
    private func putBack(_ job: JobTable.Job, _ e: SbiError) throws -> JobTable.Outcome {
        var back = job.name
        let ran = try job.gate.perform {
            back = try SpoolFolders.publish(job.path, into: spool.inbox, as: job.name)
            job.claim.finish(stems)
        }
        guard ran else { return lostOrAbandoned(job) }
        logger.warning("returned", metadata: ["file": "\(job.name)", "returned_as": "\(back)", "error": "\(e.text)",
                                              "outcome": "returned to the inbox"])
        return .returned(e)
    }

    /// Writes the error report of a claimed file and moves it to failed/; returns the error of
    /// a report that could not be written (the move happens regardless, and is what may throw).
    /// Without a stem reservation (`unreserved`: why not) no report is written.
    private func setAside(_ claim: Claim, at path: String? = nil, _ e: SbiError, options opts: ProcessOptions, unreserved: SbiError?) -> SbiError? {
        let name = claim.name, path = path ?? claim.path
        var unreported: SbiError? = nil
        do {
            if let unreserved { throw unreserved }
            try Pipeline.writeError(e, file: path, options: opts)
        } catch {
            unreported = (error as? SbiError) ?? SbiError(.ioError, "\(error)")
            logger.error("error report not written", metadata: ["file": "\(name)", "error": "\(unreported!.text)",
                                                                 "report_of": "\(e.text)", "outcome": "failed without report"])
        }
        do {
            try SpoolFolders.publish(path, into: spool.failed, as: name)
            claim.finish(stems)
        } catch {
            // rename within the spool failed too: the file stays in processing/ for the next start
            logger.error("spool error", metadata: ["file": "\(name)", "error": "\((error as? SbiError)?.text ?? "\(error)")"])
            return unreported ?? (error as? SbiError) ?? SbiError(.ioError, "\(error)")
        }
        return unreported
    }

    /// Output names for a file: its stem, or STEM.1, STEM.2, ... when outputs of a different input
    /// already use it or another job (of any worker) holds it. Outputs of the same input (an
    /// earlier, interrupted attempt) are replaced.
    private func reserveStem(for claim: Claim, sha256: String) throws -> StemReservation {
        try stems.reserve(base: Pipeline.stem(of: claim.name), claim: claim, sha256: sha256) { stem in
            switch OutputOwner.of(OutputSet(stem: stem, outbox: options.outbox)) {
            case .none: return true
            case .some(let owner) where owner == sha256: return true
            default:
                logger.warning("name clash", metadata: ["file": "\(claim.name)", "existing": "\(stem)", "reason": "outputs of another input use this name"])
                return false
            }
        }
    }

    private func account(_ name: String, _ outcome: JobTable.Outcome, _ loop: inout Loop) {
        var summary = loop.summary
        defer { loop.summary = summary }
        switch outcome {
        case .done(let r):
            summary.processed += 1
            logger.info("done", metadata: ["file": "\(name)", "model": "\(r.modelName)", "outcome": "done", "stem": "\(r.stem)",
                                           "samples": "\(r.samples)", "warnings": "\(r.warnings)", "verdict": "\(r.verdict)", "duration": "\(String(format: "%.2f", r.seconds))s"])
        case .failed(let e, let unreported):
            summary.failed += 1
            if let unreported { summary.noteOutputFailure(unreported) }
            logger.error("failed", metadata: ["file": "\(name)", "outcome": "failed", "code": "\(e.code.rawValue)", "error": "\(e.text)"])
        case .abandoned, .lost:
            summary.abandoned += 1
        case .returned(let e):
            summary.returned += 1
            guard e.code != .temporary else { break }
            summary.noteOutputFailure(e)
            loop.claimsPausedUntil = Date().addingTimeInterval(options.rescan)
            logger.error("outbox failing; not taking files", metadata: ["error": "\(e.text)", "until": options.once ? "the end of this run" : "\(Int(options.rescan)) s"])
        }
    }

    // MARK: - crash recovery, shutdown

    /// Every lease period: adopts the claims of dead workers and queues them to run first, one at a
    /// time, unless they were started maxAttempts times already (then they are set aside as poison).
    private func adoptIfDue(_ loop: inout Loop, now: Date) {
        guard now >= loop.nextAdoption, loop.stopDeadline == nil else { return }
        loop.nextAdoption = now.addingTimeInterval(options.leasePeriod)
        do { try standFirm() } catch { logger.error("spool error", metadata: ["error": "\(error)"]) }
        let adoption = ClaimAdoption(spool: spool, lease: lease, stems: stems, outbox: options.outbox).adoptDead()
        for (worker, reason) in adoption.workers {
            logger.warning("adopted", metadata: ["from_worker": "\(worker)", "reason": "\(reason)"])
        }
        var again: [Pending] = []
        for claim in adoption.claims + leftovers(loop, besides: adoption.claims) {
            let attempts = claim.attemptCount
            if attempts >= options.maxAttempts {
                setAsidePoison(claim, attempts: attempts, &loop.summary)
            } else {
                logger.info("recovered", metadata: ["file": "\(claim.name)", "attempts": "\(attempts)"])
                again.append(Pending(name: claim.name, adopted: claim))
            }
        }
        loop.queue.insert(contentsOf: again, at: loop.queue.firstIndex { !$0.recovered } ?? loop.queue.endIndex)
    }

    /// Claims in this worker's own folder that no job runs, none waits for and `adopted` (this
    /// pass's adoptions, already under it) does not hold (a spool error left them): taken again.
    private func leftovers(_ loop: Loop, besides adopted: [Claim]) -> [Claim] {
        let busy = Set(jobs.runningJobs.map(\.claim.path) + loop.queue.compactMap(\.adopted?.path) + adopted.map(\.path))
        return ClaimAdoption.folders(under: myFolder).flatMap { dir in SpoolFolders.inputs(in: dir).map { Claim(folder: dir, name: $0) } }
            .filter { !busy.contains($0.path) }
    }

    /// Takes a fresh lease and claim folder when a stall let another worker adopt this one's.
    private func standFirm() throws {
        if try lease.ensureStanding() {
            logger.warning("lease renewed", metadata: ["worker": "\(WorkerIdentity.current)",
                                                       "reason": "this worker stalled past its lease and its claims were adopted by another worker"])
        }
    }

    /// A claim that stopped its workers `attempts` times: its error report, and failed/.
    private func setAsidePoison(_ claim: Claim, attempts: Int, _ summary: inout DaemonSummary) {
        let name = claim.name
        let e = SbiError(.badInput, "\(name): sbiwatch stopped \(attempts) times while processing this file; it is set aside as a poison file",
                         hint: "check the file (and the logs of those runs); to try again, move it from \(spool.failed) back into the inbox")
        let sha = try? InputFile.sha256(ofFile: claim.path)
        var opts = ProcessOptions(outbox: options.outbox)
        opts.inputSHA256 = sha
        var unreserved: SbiError? = nil, reservation: StemReservation? = nil
        do { reservation = try reserveStem(for: claim, sha256: sha ?? "") } catch {
            unreserved = (error as? SbiError) ?? SbiError(.ioError, "\(error)")
        }
        opts.stem = reservation?.stem
        defer { if let reservation { stems.release(reservation) } }
        if let unreported = setAside(claim, e, options: opts, unreserved: unreserved) { summary.noteOutputFailure(unreported) }
        // counted once it has left processing/ (a failed move leaves it for the next start)
        guard !FileManager.default.fileExists(atPath: claim.path) else { return }
        summary.failed += 1
        logger.error("poison", metadata: ["file": "\(name)", "attempts": "\(attempts)", "outcome": "failed"])
    }

    /// Ends the lease; it is removed only when no claim is left here (the rest wait for adoption).
    private func endLease() {
        guard let lease else { return }
        ClaimAdoption.removeEmpty(myFolder, stems: stems)
        rmdir(spool.committingFolder(of: .current))
        let empty = !FileManager.default.fileExists(atPath: myFolder)
        if !empty { logger.info("claims left for adoption", metadata: ["folder": "\(myFolder)"]) }
        lease.end(removingLease: empty)
    }

    /// Closes the gates of unfinished files and puts them back into the inbox.
    private func abandonInFlight(_ summary: inout DaemonSummary) {
        for job in jobs.runningJobs {
            job.gate.close()
            // a job that committed before the gate closed has moved its input already
            let name = job.name, path = job.path
            guard jobs.isRunning(job), FileManager.default.fileExists(atPath: path) else { continue }
            if let back = try? SpoolFolders.publish(path, into: spool.inbox, as: name) {
                job.claim.finish(stems)
                summary.abandoned += 1
                logger.warning("abandoned", metadata: ["file": "\(name)", "outcome": "returned to the inbox", "returned_as": "\(back)"])
            }
        }
        removeOwnTemporaryFiles()
    }

    /// Temporary outputs (".NAME.tmp-HOST.BOOT.PID-N") of processes of this machine that no longer
    /// run (those of other hosts go with the adoption of their worker's claims).
    private func removeStaleTemporaryFiles() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: options.outbox)) ?? [] {
            guard let owner = AtomicFile.temporaryOwner(ofName: name), owner != .current, owner.isDeadProcessHere else { continue }
            unlink(options.outbox + "/" + name)
            logger.info("removed stale temporary file", metadata: ["file": "\(name)"])
        }
    }

    private func removeOwnTemporaryFiles() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: options.outbox)) ?? [] where AtomicFile.temporaryOwner(ofName: name) == .current {
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
            logger.info("reloaded models", metadata: ["models": "\(fresh.names.joined(separator: ","))", "models_file": "\(fresh.modelsFile ?? "-")"])
        } catch {
            logger.error("reload failed; keeping the models loaded before", metadata: ["error": "\(error)"])
        }
    }
}
