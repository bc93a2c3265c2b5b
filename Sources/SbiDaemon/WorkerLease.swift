// A worker's hold on its claims: STATE/workers/WORKER.lease, flock'ed for the worker's life and its
// mtime refreshed every `period` seconds (the heartbeat). Another worker judges it gone:
// - on the same machine (same host and boot): when it can flock the lease (the kernel released it
//   at the worker's death) or, without a lease file, when the pid no longer runs;
// - on another host: when the lease is older than 3 periods, measured against the filesystem's
//   own clock (the judge touches a probe file and compares mtimes), so clock skew between hosts
//   cannot make a live worker look dead.
// Every worker also holds STATE/lock shared, which an earlier single-worker version held exclusively.
import Dispatch
import Foundation
import SbiCore

public final class WorkerLease: @unchecked Sendable {
    public let identity: WorkerIdentity
    public let period: TimeInterval
    let spool: SpoolFolders
    private let leaseFD: Int32
    private let spoolLockFD: Int32
    private let probeFD: Int32
    private let heartbeat: DispatchSourceTimer

    /// Leases older than this many periods belong to workers taken for dead.
    public static let expiryPeriods = 3.0

    public static func leasePath(_ spool: SpoolFolders, _ worker: WorkerIdentity) -> String { spool.workers + "/" + worker.description + ".lease" }
    static func probePath(_ spool: SpoolFolders, _ worker: WorkerIdentity) -> String { spool.workers + "/.probe-" + worker.description }

    public init(spool: SpoolFolders, identity: WorkerIdentity = .current, period: TimeInterval) throws {
        self.spool = spool; self.identity = identity; self.period = period
        let folder = spool.claimFolder(of: identity)
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw SbiError(.cannotCreate, "cannot create the claim folder \(folder): \(error.localizedDescription)",
                           hint: "check the permissions of \(spool.processing)")
        }
        let lockFD = try Self.lockShared(spool)
        let path = Self.leasePath(spool, identity)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0, flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = String(cString: strerror(errno))
            if fd >= 0 { close(fd) }
            close(lockFD)
            throw SbiError(.temporary, "cannot take the lease \(path): \(reason)",
                           hint: "another process runs as worker \(identity.description); check SBIWATCH_HOST and the permissions of \(spool.workers)")
        }
        let text = "worker \(identity)\nperiod \(period)\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        fsync(fd)
        spoolLockFD = lockFD
        leaseFD = fd
        probeFD = open(Self.probePath(spool, identity), O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        heartbeat = DispatchSource.makeTimerSource(queue: .global())
        heartbeat.schedule(deadline: .now() + period, repeating: period, leeway: .milliseconds(50))
        heartbeat.setEventHandler { _ = futimens(fd, nil) }
        heartbeat.resume()
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
        flock(leaseFD, LOCK_UN); close(leaseFD); close(spoolLockFD)
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
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return nil }
            flock(fd, LOCK_UN)
            return "its process \(other.pid) no longer holds its lease"
        }
        guard let now = filesystemNow(), let refreshed = Self.freshModificationTime(path) ?? Self.freshModificationTime(spool.claimFolder(of: other)) else { return nil }
        let age = Double(now.tv_sec - refreshed.tv_sec) + Double(now.tv_nsec - refreshed.tv_nsec) / 1e9
        let limit = Self.expiryPeriods * max(period, Self.recordedPeriod(path) ?? period)
        return age > limit ? "its lease was last renewed \(Int(age)) s ago (limit \(Int(limit)) s, by the filesystem's clock)" : nil
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
