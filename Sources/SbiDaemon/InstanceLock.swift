// One daemon per inbox: an exclusive flock on STATE/lock, held for the life of the process (the
// kernel releases it when the process dies, even by kill -9). The file holds the holder's pid.
import Foundation
import SbiCore

public final class InstanceLock {
    let fd: Int32

    public init(path: String, inbox: String) throws {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw SbiError(.cannotCreate, "cannot open the lock file \(path): \(String(cString: strerror(errno)))", hint: "check the permissions of the state folder")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            close(fd)
            throw SbiError(.temporary, "another sbiwatch (pid \(holder.isEmpty ? "?" : holder)) is already watching \(inbox)",
                           hint: "stop that one first (kill -TERM \(holder)), or give this one another inbox")
        }
        let text = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        fsync(fd)
    }

    deinit { flock(fd, LOCK_UN); close(fd) }
}
