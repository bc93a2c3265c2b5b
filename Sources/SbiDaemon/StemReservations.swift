// Output stems reserved on disk, so two jobs (of any workers) never write the same STEM:
// OUTBOX/.STEM.sbiwatch-stem holds "WORKER SHA256 TOKEN" (the reserving worker, the input's digest
// and a token of the claim), written under a temporary name and linked into place, so it is never
// seen empty and never replaces another. The claim records stem and token first (.NAME.stem beside
// it), so a dead worker's reservations are found, and handed over, by whoever adopts its claims; a
// reservation is only ever released with its claim's token.
import Foundation
import SbiCore
import SbiPipeline

/// One reservation: the stem and the token of the claim that holds it.
struct StemReservation: Equatable, Sendable {
    var stem: String
    var token: String
}

struct StemReservations: Sendable {
    let outbox: String
    let owner: WorkerIdentity

    func path(_ stem: String) -> String { outbox + "/." + stem + ".sbiwatch-stem" }

    /// The holder, input digest and claim token of a reservation.
    func holder(_ stem: String) -> (worker: WorkerIdentity, sha256: String, token: String)? {
        guard let text = try? String(contentsOfFile: path(stem), encoding: .utf8) else { return nil }
        let parts = text.split(whereSeparator: \.isWhitespace)
        guard parts.count == 3, let worker = WorkerIdentity.parse(String(parts[0])) else { return nil }
        return (worker, String(parts[1]), String(parts[2]))
    }

    /// The first of BASE, BASE.1, ... that no other claim holds and that `isFree` accepts (no
    /// outputs of another input). A stem the claim recorded already (an adopted claim, whose
    /// reservation was handed over) is kept.
    func reserve(base: String, claim: Claim, sha256: String, isFree: (String) -> Bool) throws -> StemReservation {
        let token = claim.recordedReservation?.token ?? String(UInt64.random(in: 1...UInt64.max), radix: 16)
        if let recorded = claim.recordedReservation, try take(recorded, sha256: sha256) {
            if isFree(recorded.stem) { return recorded }
            release(recorded)
        }
        for k in 0... {
            let r = StemReservation(stem: k == 0 ? base : "\(base).\(k)", token: token)
            try AtomicFile.write(Data("\(r.stem) \(r.token)\n".utf8), to: claim.stemPath)
            guard try take(r, sha256: sha256) else { continue }
            if isFree(r.stem) { return r }
            release(r)
        }
        fatalError("unreachable")
    }

    /// Creates the reservation (or finds it already this worker's for this claim); false when another holds it.
    private func take(_ r: StemReservation, sha256: String) throws -> Bool {
        let digest = sha256.isEmpty ? "-" : sha256
        let tmp = try AtomicFile.prepare(Data("\(owner) \(digest) \(r.token)\n".utf8), for: path(r.stem))
        defer { unlink(tmp) }
        if link(tmp, path(r.stem)) == 0 { return true }
        guard errno == EEXIST else {
            throw SbiError(.cannotCreate, "cannot reserve the output name \(r.stem) in \(outbox): \(String(cString: strerror(errno)))",
                           hint: "check that the outbox is writable and has free space")
        }
        guard let h = holder(r.stem) else { return false }
        return h.worker == owner && h.token == r.token
    }

    /// Gives up a reservation of this worker's claim (by token; another claim's is left alone).
    func release(_ r: StemReservation) {
        guard let h = holder(r.stem), h.worker == owner, h.token == r.token else { return }
        unlink(path(r.stem))
    }

    /// Hands the reservation `r` of a dead worker among `dead` over to this one (same claim token);
    /// false when it could not be written (the record is kept for a later try).
    @discardableResult
    func takeOver(_ r: StemReservation, from dead: Set<WorkerIdentity>) -> Bool {
        guard let h = holder(r.stem), h.token == r.token else { return true }   // not (or no longer) this claim's
        guard dead.contains(h.worker) else { return h.worker == owner }
        return (try? AtomicFile.write(Data("\(owner) \(h.sha256) \(r.token)\n".utf8), to: path(r.stem))) != nil
    }
}
