// Who a process is among the workers that share a spool: HOST.BOOT.PID. The host is the machine's
// name (or SBIWATCH_HOST, the documented override that lets tests simulate hosts), BOOT the first
// 8 hex digits of the kernel's boot id (a pid is only unique within one boot), PID the process.
// Claim folders, leases and temporary file names carry it, so nothing of one worker is mistaken
// for another's.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct WorkerIdentity: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var boot: String
    public var pid: pid_t

    public init(host: String, boot: String, pid: pid_t) {
        self.host = Self.sanitized(host); self.boot = Self.sanitized(boot); self.pid = pid
    }

    /// "HOST.BOOT.PID"
    public var description: String { "\(host).\(boot).\(pid)" }

    /// This process (computed once).
    public static let current: WorkerIdentity = {
        let env = ProcessInfo.processInfo.environment
        let host = env["SBIWATCH_HOST"].flatMap { $0.isEmpty ? nil : $0 } ?? machineName()
        return WorkerIdentity(host: host, boot: bootID(), pid: getpid())
    }()

    /// Reads "HOST.BOOT.PID" (the host may itself contain dots); nil for anything else.
    public static func parse(_ text: String) -> WorkerIdentity? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 3, let pid = pid_t(parts[parts.count - 1]), pid > 0 else { return nil }
        let boot = String(parts[parts.count - 2]), host = parts.dropLast(2).joined(separator: ".")
        guard !host.isEmpty, !boot.isEmpty, sanitized(host) == host, sanitized(boot) == boot else { return nil }
        return WorkerIdentity(host: host, boot: boot, pid: pid)
    }

    /// Same host and same boot: its pid can be asked about with kill(2), its locks with flock(2).
    public func sharesMachine(with other: WorkerIdentity) -> Bool { host == other.host && boot == other.boot }

    /// On this machine and gone (kill(pid, 0) reports no such process); false for other machines.
    public var isDeadProcessHere: Bool {
        guard sharesMachine(with: .current) else { return false }
        return kill(pid, 0) != 0 && errno == ESRCH
    }

    /// Letters, digits, '-', '_' and inner dots only (at most 63 bytes), so it fits in file names.
    static func sanitized(_ s: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        var out = String(s.map { allowed.contains($0) ? $0 : "-" }.prefix(63))
        while out.hasPrefix(".") { out.removeFirst() }
        while out.hasSuffix(".") { out.removeLast() }
        return out.isEmpty ? "host" : out
    }

    static func machineName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "host" }
        return String(cString: buffer)
    }

    static func bootID() -> String {
        let text = (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)) ?? ""
        let hex = text.filter { $0.isHexDigit }
        return hex.isEmpty ? "0" : String(hex.prefix(8))
    }
}
