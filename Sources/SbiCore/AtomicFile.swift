// Outputs that appear whole or not at all: written under a temporary dotfile name in the target's
// folder, fsync'd, then renamed over the final name (and the folder fsync'd so the rename lasts).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum AtomicFile {
    /// A temporary name beside `path` (a dotfile, so spool scanners ignore it):
    /// ".NAME.tmp-HOST.BOOT.PID-RANDOM", so no worker on another host takes it for its own.
    public static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().path + "/" + temporaryPrefix(url.lastPathComponent, owner: .current)
            + "\(UInt32.random(in: 0...UInt32.max))"
    }

    /// ".NAME.tmp-HOST.BOOT.PID-": NAME cut to its first 120 bytes (whole characters), so with a
    /// host of at most 63 bytes the temporary name of any final name that fits the 255-byte limit fits too.
    private static func temporaryPrefix(_ name: String, owner: WorkerIdentity) -> String {
        var short = ""
        for c in name {
            guard short.utf8.count + String(c).utf8.count <= 120 else { break }
            short.append(c)
        }
        return ".\(short).tmp-\(owner)-"
    }

    /// The worker that writes (or wrote) a temporary file of this name; nil for other names.
    public static func temporaryOwner(ofName name: String) -> WorkerIdentity? {
        guard name.hasPrefix("."), let r = name.range(of: ".tmp-", options: .backwards) else { return nil }
        let rest = name[r.upperBound...]
        guard let dash = rest.lastIndex(of: "-") else { return nil }
        return WorkerIdentity.parse(String(rest[..<dash]))
    }

    /// Removes the temporary files of `path` that `owner` (this process by default) has left (a write cut short).
    public static func removeTemporaries(of path: String, owner: WorkerIdentity = .current) {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path, prefix = temporaryPrefix(url.lastPathComponent, owner: owner)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix(prefix) {
            unlink(dir + "/" + name)
        }
    }

    /// Writes `data` to `path` atomically.
    public static func write(_ data: Data, to path: String) throws {
        let tmp = try prepare(data, for: path)
        try commit(tmp, to: path)
    }

    /// Writes `data` completely to a temporary file beside `path` and flushes it; `commit` makes it
    /// appear. Returns the temporary path.
    public static func prepare(_ data: Data, for path: String) throws -> String {
        let tmp = temporaryPath(for: path)
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw SbiError(.cannotCreate, "cannot create \(path): \(String(cString: strerror(errno)))",
                           hint: "check that \(dir) exists and is writable")
        }
        var ok = false
        defer { if !ok { unlink(tmp) } }
        let written = data.withUnsafeBytes { raw -> Int in
            var off = 0
            while off < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 { if errno == EINTR { continue }; return -1 }
                off += n
            }
            return off
        }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == data.count, synced else {
            throw SbiError(.ioError, "cannot write \(path): \(String(cString: strerror(errno)))", hint: "check free disk space")
        }
        ok = true
        return tmp
    }

    /// Makes a file that was written completely at `temporary` appear at `path`: fsync, rename,
    /// fsync the folder. On failure the temporary file is removed.
    public static func commit(_ temporary: String, to path: String) throws {
        var ok = false
        defer { if !ok { unlink(temporary) } }
        let fd = open(temporary, O_RDONLY | O_CLOEXEC)
        guard fd >= 0, fsync(fd) == 0 else {
            if fd >= 0 { close(fd) }
            throw SbiError(.ioError, "cannot flush \(path) to disk: \(String(cString: strerror(errno)))", hint: "check free disk space")
        }
        close(fd)
        try rename(temporary, to: path)
        ok = true
    }

    private static func rename(_ tmp: String, to path: String) throws {
        guard Glibc.rename(tmp, path) == 0 else {
            throw SbiError(.cannotCreate, "cannot rename into \(path): \(String(cString: strerror(errno)))")
        }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}
