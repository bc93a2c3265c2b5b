// A worker's hold on its claims: STATE/workers/WORKER.lease, flock'ed for the worker's life and its
// mtime refreshed every `period` seconds (the heartbeat). Another worker judges it gone:
// - on the same machine (same host and boot): when it can flock the lease (the kernel released it
//   at the worker's death) or, without a lease file, when the pid no longer runs;
// - on another host: when the lease is 3 periods past its last due renewal (4 periods old),
//   measured against the filesystem's own clock (the judge touches a probe file and compares mtimes), so clock skew between hosts
//   cannot make a live worker look dead.
// Every worker also holds STATE/lock shared, which an earlier single-worker version held exclusively.
import Dispatch
import Foundation
import SbiCore

public final class WorkerLease: @unchecked Sendable {
    public let identity: WorkerIdentity
    public let period: TimeInterval
    let spool: SpoolFolders
    private let lock = NSLock()
    private var leaseFD: Int32
    private let spoolLockFD: Int32
    private let probeFD: Int32
    private let heartbeat: DispatchSourceTimer

    /// A lease this many periods past its last due renewal belongs to a worker taken for dead: a
    /// live worker's lease is at most one period old, so a worker stalled for up to 3 periods keeps it.
    public static let expiryPeriods = 3.0

    public static func leasePath(_ spool: SpoolFolders, _ worker: WorkerIdentity) -> String { spool.workers + "/" + worker.description + ".lease" }
    static func probePath(_ spool: SpoolFolders, _ worker: WorkerIdentity) -> String { spool.workers + "/.probe-" + worker.description }

    /// Takes the lease (flock'ed before it becomes visible), then creates the claim folder.
    public init(spool: SpoolFolders, identity: WorkerIdentity = .current, period: TimeInterval) throws {
        self.spool = spool; self.identity = identity; self.period = period
        let lockFD = try Self.lockShared(spool)
        do { leaseFD = try Self.takeLease(spool, identity, period: period) } catch { close(lockFD); throw error }
        spoolLockFD = lockFD
        probeFD = open(Self.probePath(spool, identity), O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        heartbeat = DispatchSource.makeTimerSource(queue: .global())
        try ensureClaimFolder()
        heartbeat.schedule(deadline: .now() + period, repeating: period, leeway: .milliseconds(50))
        heartbeat.setEventHandler { [weak self] in self?.renew() }
        heartbeat.resume()
    }

    /// A lease file written and flock'ed under a temporary name, then linked into place, so no
    /// judge ever sees it unlocked or empty. A lease of this identity left by a dead process (its
    /// flock free) is taken over; one held by a live process is refused.
    static func takeLease(_ spool: SpoolFolders, _ identity: WorkerIdentity, period: TimeInterval) throws -> Int32 {
        let path = leasePath(spool, identity)
        let refuse = { (reason: String) in
            SbiError(.temporary, "cannot take the lease \(path): \(reason)",
                     hint: "another process runs as worker \(identity.description); check SBIWATCH_HOST and the permissions of \(spool.workers)")
        }
        let tmp = AtomicFile.temporaryPath(for: path)
        let fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw refuse(String(cString: strerror(errno))) }
        defer { unlink(tmp) }
        let text = "worker \(identity)\nperiod \(period)\n"
        _ = flock(fd, LOCK_EX | LOCK_NB)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        fsync(fd)
        if link(tmp, path) == 0 { return fd }
        close(fd)
        guard errno == EEXIST else { throw refuse(String(cString: strerror(errno))) }
        // a lease of this very identity exists: a live holder keeps it, a dead one's is taken over
        let old = open(path, O_RDWR | O_CLOEXEC)
        guard old >= 0, flock(old, LOCK_EX | LOCK_NB) == 0 else {
            if old >= 0 { close(old) }
            throw refuse("held by a running process")
        }
        _ = ftruncate(old, 0)
        _ = text.withCString { pwrite(old, $0, strlen($0), 0) }
        fsync(old)
        return old
    }

    private func ensureClaimFolder() throws {
        let folder = spool.claimFolder(of: identity)
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw SbiError(.cannotCreate, "cannot create the claim folder \(folder): \(error.localizedDescription)",
                           hint: "check the permissions of \(spool.processing)")
        }
    }

    private func renew() {
        lock.lock(); let fd = leaseFD; lock.unlock()
        _ = futimens(fd, nil)
    }

    /// After a stall long enough for another worker to adopt this one's claims (its lease unlinked,
    /// its folder moved): takes a fresh lease and claim folder, so the worker goes on claiming.
    /// Returns whether they had been lost.
    @discardableResult
    public func ensureStanding() throws -> Bool {
        var st = stat()
        lock.lock(); let fd = leaseFD; lock.unlock()
        let leaseLinked = fstat(fd, &st) == 0 && st.st_nlink > 0
        let folderThere = FileManager.default.fileExists(atPath: spool.claimFolder(of: identity))
        guard !leaseLinked || !folderThere else { return false }
        if !leaseLinked {
            let fresh = try Self.takeLease(spool, identity, period: period)
            lock.lock(); let old = leaseFD; leaseFD = fresh; lock.unlock()
            close(old)
        }
        try ensureClaimFolder()
        return true
    }
    /// Shared flock on STATE/lock; refused while a daemon of an earlier version holds it exclusively.
    private static func lockShared(_ spool: SpoolFolders) throws -> Int32 {
        let fd = open(spool.lockFile, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw SbiError(.cannotCreate, "cannot open the lock file \(spool.lockFile): \(String(cString: strerror(errno)))", hint: "check the permissions of the state folder")
        }
        guard flock(fd, LOCK_SH | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: spool.lockFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw SbiError(.temporary, "an sbiwatch of an earlier, single-worker version (pid \(holder.isEmpty ? "?" : holder)) holds \(spool.inbox) exclusively",
                           hint: "stop it first (kill -TERM \(holder.isEmpty ? "PID" : holder)); workers of this version share the inbox")
        }
        return fd
    }

    /// Ends the lease: the heartbeat stops; the lease file goes only when the claim folder is empty
    /// (otherwise the claims stay for the next worker to adopt).
    public func end(removingLease: Bool) {
        heartbeat.cancel()
        if removingLease {
            unlink(Self.probePath(spool, identity))
            unlink(Self.leasePath(spool, identity))
        }
        lock.lock(); let fd = leaseFD; lock.unlock()
        flock(fd, LOCK_UN); close(fd); close(spoolLockFD)
        if probeFD >= 0 { close(probeFD) }
    }

    /// The filesystem's time now: the mtime of this worker's probe file, just touched.
    func filesystemNow() -> timespec? {
        var st = stat()
        guard probeFD >= 0, futimens(probeFD, nil) == 0, fstat(probeFD, &st) == 0 else { return nil }
        return st.st_mtim
    }

    /// Why `other` (the owner of a claim folder) can be taken for dead, or nil while it may be alive.
    func goneReason(_ other: WorkerIdentity) -> String? {
        guard other != identity else { return nil }
        let path = Self.leasePath(spool, other)
        if other.sharesMachine(with: identity) {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return other.isDeadProcessHere ? "its process \(other.pid) no longer runs" : nil }
            defer { close(fd) }
            // shared, so it works on a read-only descriptor also where NFS emulates flock with fcntl locks
            if flock(fd, LOCK_SH | LOCK_NB) == 0 {
                flock(fd, LOCK_UN)
                return "its process \(other.pid) no longer holds its lease"
            }
            if errno == EWOULDBLOCK { return nil }
            // locks that do not work here: judge by the lease's age, as for another host
        }
        guard let now = filesystemNow() else { return nil }
        // a worker takes its lease before it makes folders, and removes it last: neither left means
        // it has gone (what remains is a committing folder whose claim folder was adopted already)
        guard let refreshed = Self.freshModificationTime(path) ?? Self.freshModificationTime(spool.claimFolder(of: other)) else {
            return "it left neither a lease nor a claim folder"
        }
        let age = Self.seconds(from: refreshed, to: now)
        let limit = (Self.expiryPeriods + 1) * max(period, Self.recordedPeriod(path) ?? period)
        return age > limit ? "its lease was last renewed \(Int(age)) s ago (limit \(Int(limit)) s, by the filesystem's clock)" : nil
    }

    /// Whether the file at `path` was last modified longer ago than a lease lives (by the
    /// filesystem's clock): a lease being taken exists for an instant, so one that old was left by
    /// a worker that died taking it.
    func isOlderThanALease(_ path: String) -> Bool {
        guard let now = filesystemNow(), let modified = Self.freshModificationTime(path) else { return false }
        return Self.seconds(from: modified, to: now) > (Self.expiryPeriods + 1) * period
    }

    static func seconds(from a: timespec, to b: timespec) -> Double {
        Double(b.tv_sec - a.tv_sec) + Double(b.tv_nsec - a.tv_nsec) / 1e9
    }

    /// mtime read through a fresh open (NFS revalidates attributes on open: close-to-open consistency).
    static func freshModificationTime(_ path: String) -> timespec? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        return fstat(fd, &st) == 0 ? st.st_mtim : nil
    }

    /// The period a lease's owner renews it at (its file's "period" line).
    static func recordedPeriod(_ path: String) -> Double? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return text.split(separator: "\n").first { $0.hasPrefix("period ") }.flatMap { Double($0.dropFirst(7)) }
    }
}
