// The spool (Maildir-like; the filesystem is the state), shared by any number of workers on any
// number of hosts. An input leaves the inbox only by rename into the claiming worker's own folder
// processing/HOST.BOOT.PID/ (of two workers renaming one file, exactly one succeeds), then by
// link+unlink, which never overwrites, into done/ once its outputs are complete in the outbox, or
// failed/ with STEM.error.json in the outbox. Beside each claimed NAME, .NAME.attempts counts how
// often it was started (a file that keeps crashing its worker ends in failed/) and .NAME.stem names
// the output stem reserved for it; both travel with the claim when a dead worker's folder is adopted.
import Foundation
import SbiCore

public struct SpoolFolders: Sendable {
    public let inbox: String
    public let state: String
    public var processing: String { state + "/processing" }
    public var done: String { state + "/done" }
    public var failed: String { state + "/failed" }
    /// Inputs at their commit point, in a folder per worker (see ClaimSeizure).
    public var committing: String { state + "/committing" }
    /// Leases of the workers (WORKER.lease) and their clock probes.
    public var workers: String { state + "/workers" }
    /// Attempt counts of the single-worker layout of earlier versions (read when adopting its claims).
    public var legacyAttempts: String { state + "/attempts" }
    /// Held shared by every worker: excludes an earlier version's daemon, which held it exclusively.
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
        for d in [self.state, processing, done, failed, workers, committing] {
            do { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) } catch {
                throw SbiError(.cannotCreate, "cannot create the state folder \(d): \(error.localizedDescription)", hint: "check the permissions of \(self.state)")
            }
        }
    }

    /// The claim folder of `worker`.
    public func claimFolder(of worker: WorkerIdentity) -> String { processing + "/" + worker.description }
    /// Where `worker` seizes inputs it commits.
    public func committingFolder(of worker: WorkerIdentity) -> String { committing + "/" + worker.description }

    /// Names in a folder that are inputs: regular files, not dotfiles or editor/temporary files.
    public static func inputs(in folder: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.filter { name in
            guard !isIgnored(name) else { return false }
            var st = stat()
            return lstat(folder + "/" + name, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
        }.sorted()
    }

    /// Subfolders of `folder` (not followed through symbolic links).
    public static func subfolders(of folder: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.filter { name in
            var st = stat()
            return lstat(folder + "/" + name, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
        }.sorted()
    }

    /// Dotfiles and the usual temporary names of writers that do not rename atomically.
    public static func isIgnored(_ name: String) -> Bool {
        name.hasPrefix(".") || name.hasPrefix("~") || name.hasSuffix("~") || name.hasPrefix("#")
            || [".tmp", ".part", ".partial", ".swp", ".crdownload", ".filepart"].contains { name.lowercased().hasSuffix($0) }
    }

    /// Claims `from` by renaming it to `to` (a name in a folder only this worker writes to). Returns
    /// false when another worker was first (ENOENT), true when the rename happened, including an
    /// NFS rename that was retransmitted after it succeeded (ENOENT, yet `to` is there and `from` gone).
    public static func claim(_ from: String, as to: String) throws -> Bool {
        if rename(from, to) == 0 { syncFolders(of: [from, to]); return true }
        let failure = errno
        if failure == ENOENT {
            return exists(to) && !exists(from)
        }
        throw SbiError(.ioError, "cannot move \(from) to \(to): \(String(cString: strerror(failure)))", hint: "check that both are on one filesystem and writable")
    }

    /// Moves `from` into `folder` as `name` or, when that is taken, NAME.1, NAME.2, ... (before the
    /// extension) by link+unlink: an existing file is never replaced, whoever else writes to `folder`.
    /// Returns the name used. A link that NFS retransmitted after it succeeded counts as done.
    @discardableResult
    public static func publish(_ from: String, into folder: String, as name: String) throws -> String {
        var source = stat()
        guard lstat(from, &source) == 0 else {
            throw SbiError(.ioError, "cannot move \(from) into \(folder): \(String(cString: strerror(errno)))", hint: "check that the spool is writable")
        }
        for candidate in numberedNames(name) {
            let target = folder + "/" + candidate
            if link(from, target) != 0 {
                let failure = errno
                // a file we may not hard-link (fs.protected_hardlinks: another user's, unreadable) or a
                // filesystem without links: rename that refuses to replace, where the kernel has it
                if failure == EPERM || failure == EOPNOTSUPP || failure == EMLINK {
                    switch renameNoReplace(from, target) {
                    case 0: syncFolders(of: [from, target]); return candidate
                    case EEXIST: continue
                    case let other:
                        throw SbiError(.ioError, "cannot move \(from) into \(folder): \(String(cString: strerror(other)))",
                                       hint: "the spool needs hard links or rename without replacement (local filesystems, NFS); check that it is writable")
                    }
                }
                var existing = stat()
                let sameFile = failure == EEXIST && lstat(target, &existing) == 0
                    && existing.st_ino == source.st_ino && existing.st_dev == source.st_dev
                if failure == EEXIST && !sameFile { continue }
                if !sameFile {
                    throw SbiError(.ioError, "cannot link \(from) into \(folder): \(String(cString: strerror(failure)))",
                                   hint: "the spool needs a filesystem with hard links (local filesystems, NFS); check that it is writable")
                }
            }
            guard unlink(from) == 0 || errno == ENOENT else {
                throw SbiError(.ioError, "cannot remove \(from) after linking it into \(folder): \(String(cString: strerror(errno)))", hint: "check the permissions of the spool")
            }
            syncFolders(of: [from, target])
            return candidate
        }
        fatalError("unreachable")
    }

    /// renameat2(RENAME_NOREPLACE) (looked up in the C library, which Swift's Glibc module does not
    /// declare); 0 or the errno. Where the filesystem lacks it (EINVAL), a checked rename, which a
    /// writer racing into the same name could defeat.
    static func renameNoReplace(_ from: String, _ to: String) -> Int32 {
        typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") {
            let call = unsafeBitCast(symbol, to: RenameAt2.self)
            if call(AT_FDCWD, from, AT_FDCWD, to, 1 /* RENAME_NOREPLACE */) == 0 { return 0 }
            guard errno == EINVAL || errno == ENOSYS else { return errno }
        }
        guard !exists(to) else { return EEXIST }
        return rename(from, to) == 0 ? 0 : errno
    }

    /// NAME, NAME.1, NAME.2, ... (before the extension).
    static func numberedNames(_ name: String) -> UnfoldSequence<String, Int> {
        let url = URL(fileURLWithPath: name)
        let ext = url.pathExtension, base = url.deletingPathExtension().lastPathComponent
        return sequence(state: 0) { k in
            defer { k += 1 }
            return k == 0 ? name : ext.isEmpty ? "\(name).\(k)" : "\(base).\(k).\(ext)"
        }
    }

    /// A name in `folder` not taken yet (for folders only this worker writes to).
    public static func freeName(_ name: String, in folder: String) -> String {
        numberedNames(name).first { !exists(folder + "/" + $0) }!
    }

    static func exists(_ path: String) -> Bool { var st = stat(); return lstat(path, &st) == 0 }

    static func syncFolders(of paths: [String]) {
        for dir in Set(paths.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path }) {
            let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 { fsync(fd); close(fd) }
        }
    }
}

/// One claimed input: its folder (a worker's claim folder, or a folder adopted into it) and name.
public struct Claim: Hashable, Sendable {
    public var folder: String
    public var name: String
    public init(folder: String, name: String) { self.folder = folder; self.name = name }

    public var path: String { folder + "/" + name }
    var attemptsPath: String { folder + "/." + name + ".attempts" }
    /// The stem reserved for this input's outputs (written before the reservation is made).
    var stemPath: String { folder + "/." + name + ".stem" }

    /// The stem reservation the claim recorded ("STEM TOKEN"), if it made one.
    var recordedReservation: StemReservation? {
        guard let text = try? String(contentsOfFile: stemPath, encoding: .utf8) else { return nil }
        let parts = text.split(whereSeparator: \.isWhitespace)
        return parts.count == 2 ? StemReservation(stem: String(parts[0]), token: String(parts[1])) : nil
    }

    /// Increments and returns the attempt count (durably).
    func recordAttempt() throws -> Int {
        let n = attemptCount + 1
        try AtomicFile.write(Data("\(n)\n".utf8), to: attemptsPath)
        return n
    }

    var attemptCount: Int {
        guard let d = FileManager.default.contents(atPath: attemptsPath),
              let n = Int(String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else { return 0 }
        return n
    }

    /// Once the input has left the folder: releases its stem reservation, then removes its
    /// bookkeeping (in that order, so a crash between leaves the reservation findable).
    func finish(_ stems: StemReservations) {
        if let r = recordedReservation { stems.release(r) }
        unlink(attemptsPath); unlink(stemPath)
    }
}
