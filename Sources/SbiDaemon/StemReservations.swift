// Output stems reserved on disk, so two workers never write the same STEM: OUTBOX/.STEM.sbiwatch-stem,
// created with O_EXCL and holding "WORKER SHA256" (the reserving worker and the input's digest).
// The claim records the stem first (.NAME.stem beside it), so a dead worker's reservations are
// found, and handed over, by whoever adopts its claims; nobody else ever removes one.
import Foundation
import SbiCore
import SbiPipeline

struct StemReservations {
    let outbox: String
    let owner: WorkerIdentity

    func path(_ stem: String) -> String { outbox + "/." + stem + ".sbiwatch-stem" }

    /// The holder and input digest of a reservation.
    func holder(_ stem: String) -> (worker: WorkerIdentity, sha256: String)? {
        guard let text = try? String(contentsOfFile: path(stem), encoding: .utf8) else { return nil }
        let parts = text.split(whereSeparator: \.isWhitespace)
        guard parts.count == 2, let worker = WorkerIdentity.parse(String(parts[0])) else { return nil }
        return (worker, String(parts[1]))
    }

    /// The first of BASE, BASE.1, ... that is reserved for nobody else (or for this very input by
    /// this worker, after an adoption) and that `isFree` accepts (no outputs of another input).
    /// A stem the claim recorded already (an adopted claim, whose reservation was handed over) is kept.
    func reserve(base: String, claim: Claim, sha256: String, isFree: (String) -> Bool) throws -> String {
        if let recorded = claim.recordedStem, try take(recorded, sha256: sha256) {
            if isFree(recorded) { return recorded }
            release(recorded)
        }
        for k in 0... {
            let stem = k == 0 ? base : "\(base).\(k)"
            try AtomicFile.write(Data("\(stem)\n".utf8), to: claim.stemPath)
            guard try take(stem, sha256: sha256) else { continue }
            if isFree(stem) { return stem }
            release(stem)
        }
        fatalError("unreachable")
    }

    /// Creates the reservation of `stem`; true when created, or already this worker's for this input.
    private func take(_ stem: String, sha256: String) throws -> Bool {
        let digest = sha256.isEmpty ? "-" : sha256
        let fd = open(path(stem), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            guard errno == EEXIST else {
                throw SbiError(.cannotCreate, "cannot reserve the output name \(stem) in \(outbox): \(String(cString: strerror(errno)))",
                               hint: "check that the outbox is writable")
            }
            guard let h = holder(stem) else { return false }
            return h.worker == owner && h.sha256 == digest
        }
        let text = "\(owner) \(digest)\n"
        let written = text.withCString { write(fd, $0, strlen($0)) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == text.utf8.count, synced else {
            unlink(path(stem))
            throw SbiError(.ioError, "cannot reserve the output name \(stem) in \(outbox): \(String(cString: strerror(errno)))",
                           hint: "check free space in the outbox")
        }
        return true
    }

    /// Gives up a reservation of this worker's.
    func release(_ stem: String) {
        if holder(stem)?.worker == owner { unlink(path(stem)) }
    }

    /// Hands the reservation of `stem` from a dead worker among `from` over to this one.
    func takeOver(_ stem: String, from dead: Set<WorkerIdentity>) {
        guard let h = holder(stem), dead.contains(h.worker) else { return }
        try? AtomicFile.write(Data("\(owner) \(h.sha256)\n".utf8), to: path(stem))
    }
}
