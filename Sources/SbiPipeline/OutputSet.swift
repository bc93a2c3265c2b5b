// Stage 4 of the pipeline: a file's outputs, STEM.samples.nc, STEM.report.json and
// STEM.report.html, written completely under temporary names and then committed by renames only,
// all or none; or STEM.error.json instead. Also the readers of what an existing output was made
// from (the daemon keeps outputs of different inputs apart).
import Foundation
import SbiCore
import SbiNetCDF

/// The output names of one stem in one outbox.
public struct OutputSet: Sendable {
    public var stem: String
    public var outbox: String

    public init(stem: String, outbox: String) { self.stem = stem; self.outbox = outbox }

    public var samples: String { outbox + "/" + stem + ".samples.nc" }
    public var json: String { outbox + "/" + stem + ".report.json" }
    public var html: String { outbox + "/" + stem + ".report.html" }
    public var error: String { outbox + "/" + stem + ".error.json" }
    /// The outputs of a success, in commit order.
    public var results: [String] { [samples, json, html] }

    /// Refuses an outbox that is not a writable folder (exit 73), before any work.
    public static func checkOutbox(_ outbox: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: outbox, isDirectory: &isDir), isDir.boolValue else {
            throw SbiError(.cannotCreate, "the outbox \(outbox) is not a folder", hint: "create it, or pass --outbox with an existing folder")
        }
        guard access(outbox, W_OK | X_OK) == 0 else {
            throw SbiError(.cannotCreate, "the outbox \(outbox) is not writable by this user",
                           hint: "give the user sbiwatch runs as write permission on it, or pass another --outbox")
        }
    }

    /// Writes STEM.error.json.
    public func writeError(_ report: ErrorReport) throws {
        try AtomicFile.write(try report.encoded(), to: error)
    }
}

/// A success's outputs, complete on disk under temporary names; `commit` renames them into place.
/// Whatever is not committed is removed by `discard`.
public final class PreparedOutputs {
    let set: OutputSet
    private var temporaries: [(temporary: String, final: String)] = []

    init(_ set: OutputSet) { self.set = set }

    /// A temporary path for the samples file (written by NetCDF, not from bytes).
    func temporary(for final: String) -> String {
        let tmp = AtomicFile.temporaryPath(for: final)
        temporaries.append((tmp, final))
        return tmp
    }

    /// Writes `data` under a temporary name for `final`.
    func prepare(_ data: Data, for final: String) throws {
        temporaries.append((try AtomicFile.prepare(data, for: final), final))
    }

    /// Renames every output into place, all or none, then removes an earlier attempt's error report
    /// and runs `afterCommit` (the daemon moves the input to done/). With a gate, only while it is open.
    func commit(gate: CommitGate?, afterCommit: (() throws -> Void)?) throws -> Bool {
        let body = {
            var placed: [String] = []
            do {
                for (tmp, final) in self.temporaries {
                    try AtomicFile.commit(tmp, to: final)
                    placed.append(final)
                }
            } catch {
                for p in placed { unlink(p) }
                throw error
            }
            unlink(self.set.error)
            try afterCommit?()
        }
        guard let gate else { try body(); return true }
        return try gate.perform(body)
    }

    /// Removes temporary files that were not committed.
    func discard() { for (tmp, _) in temporaries { unlink(tmp) } }
}

/// Lets outputs be committed until it is closed; closing waits for a commit under way to finish,
/// so afterwards a file's outputs are either all in place (with its afterCommit done) or none are.
/// With a condition (the daemon's: the worker still holds the file's claim), a commit happens only
/// while it holds; once it fails the gate stays closed.
public final class CommitGate: @unchecked Sendable {
    private let lock = NSLock()
    private var closed = false
    private let condition: (@Sendable () -> Bool)?
    public init(condition: (@Sendable () -> Bool)? = nil) { self.condition = condition }

    /// Runs body unless the gate is closed or its condition fails; returns whether it ran.
    @discardableResult
    public func perform(_ body: () throws -> Void) throws -> Bool {
        lock.lock(); defer { lock.unlock() }
        if !closed, let condition, !condition() { closed = true }
        guard !closed else { return false }
        try body()
        return true
    }

    /// Whether `close()` closed it (shutdown), rather than its condition failing.
    public var isClosedByCaller: Bool { lock.lock(); defer { lock.unlock() }; return closedByCaller }
    private var closedByCaller = false

    public func close() { lock.lock(); closed = true; closedByCaller = true; lock.unlock() }
}

/// Which input the outputs under a stem were made from (its SHA-256), if any outputs exist.
public enum OutputOwner: Equatable, Sendable {
    case none, some(String), unknown

    /// Reads the input digest the reports (or, failing those, the samples file) record.
    public static func of(_ outputs: OutputSet) -> OutputOwner {
        let existing = [outputs.json, outputs.error, outputs.samples, outputs.html].filter { FileManager.default.fileExists(atPath: $0) }
        guard !existing.isEmpty else { return .none }
        if let d = FileManager.default.contents(atPath: outputs.json), let r = try? JSONDecoder().decode(ReportInputDigest.self, from: d) {
            return .some(r.input.sha256)
        }
        if let d = FileManager.default.contents(atPath: outputs.error),
           let r = try? JSONDecoder().decode(ErrorReportDigest.self, from: d), let sha = r.inputSHA256 {
            return .some(sha)
        }
        if let sha = try? SamplesFileOwner.sha256(outputs.samples) { return .some(sha) }
        return .unknown
    }

    /// The part of STEM.report.json that names its input.
    private struct ReportInputDigest: Decodable { var input: Report.Input }
    /// The part of STEM.error.json that names its input.
    private struct ErrorReportDigest: Decodable {
        var inputSHA256: String?
        enum CodingKeys: String, CodingKey { case inputSHA256 = "input_sha256" }
    }
}

/// The input digest a samples file records (global attribute sbiwatch_input_sha256).
enum SamplesFileOwner {
    static func sha256(_ path: String) throws -> String? {
        let r = try NetCDFReader(path: path)
        defer { r.close() }
        return try r.textAttribute("sbiwatch_input_sha256")
    }
}
