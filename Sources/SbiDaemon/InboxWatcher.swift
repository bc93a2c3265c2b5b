// Which inbox files are ready to take. Linux inotify (IN_CLOSE_WRITE, IN_MOVED_TO, and IN_CREATE
// for files linked in, as workers return them) wakes the loop
// as soon as something arrives; every wake-up, and a periodic full rescan (network filesystems miss
// events), lists the folder. A file is ready once its size and modification time have been stable
// for the settle period and it opens as NetCDF; a stable file that never becomes valid NetCDF is
// taken after a longer grace period (and fails with its error report). Arrival order: first seen,
// then modification time, then name.
import Foundation
import SbiPipeline

final class InboxWatcher {
    struct Candidate {
        var size: Int64
        var mtime: Double
        var stableSince: Date
        var order: Int
        var valid: Bool?
    }

    let inbox: String
    let settle: TimeInterval
    let probe: FileProbe
    /// How long a stable file that is not valid NetCDF waits before it is taken anyway.
    var invalidGrace: TimeInterval { max(3 * settle, 1) }
    private var inotifyFD: Int32 = -1
    private var wakeRead: Int32 = -1, wakeWrite: Int32 = -1
    private var candidates: [String: Candidate] = [:]
    private var arrivals = 0

    init(inbox: String, settle: TimeInterval, useInotify: Bool = true, probe: FileProbe) {
        self.inbox = inbox; self.settle = settle; self.probe = probe
        if useInotify {
            inotifyFD = inotify_init1(Int32(O_NONBLOCK | O_CLOEXEC))
            if inotifyFD >= 0 {
                let closeWrite: UInt32 = 0x0000_0008, movedTo: UInt32 = 0x0000_0080, create: UInt32 = 0x0000_0100
                if inotify_add_watch(inotifyFD, inbox, closeWrite | movedTo | create) < 0 { close(inotifyFD); inotifyFD = -1 }
            }
        }
        var fds: [Int32] = [0, 0]
        if pipe(&fds) == 0 {
            wakeRead = fds[0]; wakeWrite = fds[1]
            for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }
    }

    deinit {
        for fd in [inotifyFD, wakeRead, wakeWrite] where fd >= 0 { close(fd) }
    }

    var usesInotify: Bool { inotifyFD >= 0 }

    /// Wakes a `wait` from another thread (signals, finished jobs).
    func wake() {
        guard wakeWrite >= 0 else { return }
        var b: UInt8 = 1
        _ = write(wakeWrite, &b, 1)
    }

    /// Sleeps until an inbox event, a wake-up or the timeout.
    func wait(timeout: TimeInterval) {
        var fds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
        if inotifyFD >= 0 { fds.append(pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0)) }
        _ = poll(&fds, nfds_t(fds.count), Int32(max(0, min(timeout, 3600)) * 1000))
        var buffer = [UInt8](repeating: 0, count: 4096)
        for fd in [wakeRead, inotifyFD] where fd >= 0 {
            while read(fd, &buffer, buffer.count) > 0 {}
        }
    }

    /// Lists the inbox; returns the names ready to take, in arrival order, and how many are still settling.
    func scan(now: Date = Date()) -> (ready: [String], settling: [String]) {
        let names = SpoolFolders.inputs(in: inbox)
        let present = Set(names)
        candidates = candidates.filter { present.contains($0.key) }
        var fresh: [(String, Double)] = []
        for name in names {
            var st = stat()
            guard stat(inbox + "/" + name, &st) == 0 else { continue }
            let size = Int64(st.st_size)
            let mtime = Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
            if var c = candidates[name] {
                if c.size != size || c.mtime != mtime {
                    c.size = size; c.mtime = mtime; c.stableSince = now; c.valid = nil
                    candidates[name] = c
                }
            } else {
                // a file already old when first seen has been stable since its modification time
                let since = min(now, Date(timeIntervalSince1970: mtime))
                candidates[name] = Candidate(size: size, mtime: mtime, stableSince: since, order: 0, valid: nil)
                fresh.append((name, mtime))
            }
        }
        for (name, _) in fresh.sorted(by: { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }) {
            arrivals += 1
            candidates[name]!.order = arrivals
        }
        var ready: [String] = [], settling: [String] = []
        for (name, c) in candidates.sorted(by: { $0.value.order < $1.value.order }) {
            let stable = now.timeIntervalSince(c.stableSince)
            guard stable >= settle else { settling.append(name); continue }
            var cand = c
            if cand.valid == nil { cand.valid = opensAsNetCDF(inbox + "/" + name); candidates[name] = cand }
            if cand.valid == true || stable >= invalidGrace { ready.append(name) } else { settling.append(name) }
        }
        return (ready, settling)
    }

    /// Seconds until a file still settling may become ready (nil when none is settling), so the
    /// daemon can sleep until then instead of polling.
    func secondsToNextCheck(now: Date = Date()) -> TimeInterval? {
        var next: TimeInterval? = nil
        for c in candidates.values {
            let stable = now.timeIntervalSince(c.stableSince)
            let due = stable < settle ? settle - stable : (c.valid == true ? nil : invalidGrace - stable)
            if let due, due > 0 { next = min(next ?? due, due) }
        }
        return next
    }

    /// Forgets a name (it was claimed).
    func taken(_ name: String) { candidates[name] = nil }

    /// Whether the file reads as NetCDF, asked of the probe the daemon was given.
    func opensAsNetCDF(_ path: String) -> Bool { probe.check(path) == .valid }

}
