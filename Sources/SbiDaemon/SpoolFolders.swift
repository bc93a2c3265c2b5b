// The spool (Maildir-like; the filesystem is the state). An input leaves the inbox only by rename:
// into processing/ when claimed, then into done/ once its outputs are complete in the outbox, or
// failed/ with STEM.error.json in the outbox. attempts/NAME counts how often a claimed file was
// started, so a file that keeps crashing the process (a poison file) ends in failed/.
import Foundation
import SbiCore

public struct SpoolFolders: Sendable {
    public let inbox: String
    public let state: String
    public var processing: String { state + "/processing" }
    public var done: String { state + "/done" }
    public var failed: String { state + "/failed" }
    public var attempts: String { state + "/attempts" }
    public var lockFile: String { state + "/lock" }

    /// state defaults to INBOX/.sbiwatch.
    public init(inbox: String, state: String? = nil) throws {
        let inbox = URL(fileURLWithPath: inbox).standardizedFileURL.path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: inbox, isDirectory: &isDir), isDir.boolValue else {
            throw SbiError(.noInput, "the inbox \(inbox) is not a folder", hint: "create it, or pass the folder the files arrive in")
        }
        self.inbox = inbox
        self.state = state.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? inbox + "/.sbiwatch"
        for d in [self.state, processing, done, failed, attempts] {
            do { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) } catch {
                throw SbiError(.cannotCreate, "cannot create the state folder \(d): \(error.localizedDescription)", hint: "check the permissions of \(self.state)")
            }
        }
    }

    /// Names in a folder that are inputs: regular files, not dotfiles or editor/temporary files.
    public static func inputs(in folder: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.filter { name in
            guard !isIgnored(name) else { return false }
            var st = stat()
            return lstat(folder + "/" + name, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
        }.sorted()
    }

    /// Dotfiles and the usual temporary names of writers that do not rename atomically.
    public static func isIgnored(_ name: String) -> Bool {
        name.hasPrefix(".") || name.hasPrefix("~") || name.hasSuffix("~") || name.hasPrefix("#")
            || [".tmp", ".part", ".partial", ".swp", ".crdownload", ".filepart"].contains { name.lowercased().hasSuffix($0) }
    }

    /// rename(2) that reports failure as an SbiError.
    public static func move(_ from: String, _ to: String) throws {
        guard rename(from, to) == 0 else {
            throw SbiError(.ioError, "cannot move \(from) to \(to): \(String(cString: strerror(errno)))", hint: "check that both are on one filesystem and writable")
        }
        for dir in Set([URL(fileURLWithPath: from).deletingLastPathComponent().path, URL(fileURLWithPath: to).deletingLastPathComponent().path]) {
            let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 { fsync(fd); close(fd) }
        }
    }

    /// A name in `folder` not taken yet: NAME, else NAME.1, NAME.2, ... (before the extension).
    public static func freeName(_ name: String, in folder: String) -> String {
        guard FileManager.default.fileExists(atPath: folder + "/" + name) else { return name }
        let url = URL(fileURLWithPath: name)
        let ext = url.pathExtension, base = url.deletingPathExtension().lastPathComponent
        for k in 1... {
            let candidate = ext.isEmpty ? "\(name).\(k)" : "\(base).\(k).\(ext)"
            if !FileManager.default.fileExists(atPath: folder + "/" + candidate) { return candidate }
        }
        fatalError("unreachable")
    }

    /// Increments and returns the attempt count of a claimed file (durably).
    public func recordAttempt(_ name: String) throws -> Int {
        let n = attemptCount(name) + 1
        try AtomicFile.write(Data("\(n)\n".utf8), to: attempts + "/" + name)
        return n
    }

    public func attemptCount(_ name: String) -> Int {
        guard let d = FileManager.default.contents(atPath: attempts + "/" + name),
              let n = Int(String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else { return 0 }
        return n
    }

    public func clearAttempts(_ name: String) { unlink(attempts + "/" + name) }
}
