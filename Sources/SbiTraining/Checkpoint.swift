// Training checkpoints: a long run can stop (signal, reboot, end of a session) and continue from
// where it was, reaching the same weights as an uninterrupted run (for any thread count, like training itself).
//
// File layout (little-endian):
//   "SBIWATCH-CHECKPOINT-1\n"   magic
//   UInt64                      header length in bytes
//   header                      JSON (CheckpointHeader)
//   4 x parameterCount Float32  weights, best weights, Adam first moments, Adam second moments
import Foundation
import SbiCore
import SbiModel

/// Where and how often a training run saves its state, and how it is asked to stop.
public struct CheckpointPolicy: Sendable {
    public var path: String
    /// Save at least this often (seconds of training).
    public var everySeconds: Double
    /// Polled after every step; true: save and stop with a `.temporary` error.
    public var stopRequested: @Sendable () -> Bool
    /// Messages for the user (resuming, saved).
    public var log: @Sendable (String) -> Void

    public init(path: String, everySeconds: Double = 600, stopRequested: @escaping @Sendable () -> Bool = { false },
                log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.path = path; self.everySeconds = everySeconds; self.stopRequested = stopRequested; self.log = log
    }

    /// Where a run that writes `model` (a .sbim path) keeps its state by default: MODEL.checkpoint.
    public static func defaultPath(forModel model: String) -> String {
        (model.hasSuffix(".sbim") ? String(model.dropLast(".sbim".count)) : model) + ".checkpoint"
    }
}

/// The loop state of the trainer at a step boundary.
struct CheckpointHeader: Codable, Equatable {
    /// Identity of the run (configuration, network, model spec and simulations); a checkpoint only
    /// continues the run it came from.
    var fingerprint: String
    var step: Int
    var stepsPlanned: Int
    var adamStep: Int
    var rng: RandomStream.State
    var trainLossEMA: Double
    var bestValidationLoss: Double?
    var bestValidationStep: Int
    var overfitChecks: Int
    var lastValidationLoss: Double?
    var seconds: Double
    var parameterCount: Int
    var payloadChecksum: String
    var sbiwatchVersion: String
}

enum TrainingCheckpoint {
    static let magic = Array("SBIWATCH-CHECKPOINT-1\n".utf8)

    /// A 64-bit FNV-1a digest of the run's identity: everything that decides the weights except the
    /// thread count.
    static func fingerprint(spec: ModelSpec, settings: NetworkSettings, config: TrainingConfig,
                            simulations: [[Double]]) -> String {
        var identity = config
        identity.threads = nil
        // the series-noise and function-token choices enter through the examples' scheme name (so
        // the earlier schemes' identities are what they were before the choices existed)
        let examples = ExampleMaker.scheme(config.seriesNoise ?? .restored, functions: config.functionTokens ?? .logUniform)
        identity.seriesNoise = nil
        identity.functionTokens = nil
        struct Identity: Encodable {
            var spec: ModelSpec; var settings: NetworkSettings; var config: TrainingConfig
            /// How examples are drawn (a checkpoint of another scheme must not continue under this one).
            var examples: String
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        var hash = FNV1a()
        hash.add(Array((try? enc.encode(Identity(spec: spec, settings: settings, config: identity, examples: examples))) ?? Data()))
        for row in simulations {
            for v in row { withUnsafeBytes(of: v.bitPattern.littleEndian) { hash.add($0) } }
        }
        return hash.hex
    }

    /// Writes the checkpoint atomically (a crash while saving leaves the previous one).
    static func save(path: String, header: CheckpointHeader, arenas: [Arena]) throws {
        var payload = Data(capacity: arenas.reduce(0) { $0 + 4 * $1.count })
        for a in arenas { payload.append(UnsafeBufferPointer(start: a.base, count: a.count)) }
        var h = header
        h.payloadChecksum = try checksum(h, payload: payload)
        let json = try encode(h)
        var data = Data(magic)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(json)
        data.append(payload)
        try AtomicFile.write(data, to: path)
    }

    /// The header as stored: sorted keys; infinities and NaN as strings.
    static func encode(_ header: CheckpointHeader) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try enc.encode(header)
    }

    /// Digest of the header (its checksum field left empty) and the weights.
    static func checksum(_ header: CheckpointHeader, payload: Data) throws -> String {
        var blank = header
        blank.payloadChecksum = ""
        var h = FNV1a()
        try encode(blank).withUnsafeBytes { h.add($0) }
        payload.withUnsafeBytes { h.add($0) }
        return h.hex
    }

    /// Reads a checkpoint: the header first, which `accept` checks (is it this run's?) before the
    /// weights are read into `arenas` (each `parameterCount` values).
    static func load(path: String, into arenas: [Arena], accept: (CheckpointHeader) throws -> Void) throws -> CheckpointHeader {
        let data: Data
        do { data = try RegularFile.read(path, what: "the training checkpoint", limit: 1 << 32) } catch var e as SbiError {
            e.hint = "check it (and its permissions), or give another --checkpoint"
            throw e
        }
        func damaged(_ why: String) -> SbiError {
            SbiError(.badInput, "the training checkpoint \(path) is damaged (\(why))",
                     hint: "delete \(path) to train from the start")
        }
        guard data.count >= magic.count + 8, data.prefix(magic.count).elementsEqual(magic) else {
            throw SbiError(.usage, "\(path) is not a sbiwatch training checkpoint",
                           hint: "give --checkpoint a path of its own (it must not name your data or a model)")
        }
        var length: UInt64 = 0
        for k in 0..<8 { length |= UInt64(data[data.startIndex + magic.count + k]) << (8 * UInt64(k)) }
        let headerStart = data.startIndex + magic.count + 8
        guard length <= UInt64(data.endIndex - headerStart) else { throw damaged("header runs past the end") }
        let headerEnd = headerStart + Int(length)
        let dec = JSONDecoder()
        dec.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let header: CheckpointHeader
        do { header = try dec.decode(CheckpointHeader.self, from: data.subdata(in: headerStart..<headerEnd)) }
        catch { throw damaged("unreadable header") }
        try accept(header)
        let count = header.parameterCount
        guard count >= 0, arenas.allSatisfy({ $0.count == count }) else {
            throw damaged("\(count) weights, this network has \(arenas.first?.count ?? 0)")
        }
        guard data.endIndex - headerEnd == 4 * count * arenas.count else {
            throw damaged("\(data.endIndex - headerEnd) bytes of weights, expected \(4 * count * arenas.count)")
        }
        let payload = data.subdata(in: headerEnd..<data.endIndex)
        guard try checksum(header, payload: payload) == header.payloadChecksum else { throw damaged("checksum mismatch") }
        payload.withUnsafeBytes { raw in
            for (k, a) in arenas.enumerated() {
                UnsafeMutableRawPointer(a.base).copyMemory(from: raw.baseAddress! + 4 * count * k, byteCount: 4 * count)
            }
        }
        return header
    }
}

// The weights are stored as the machine's Float32 bytes, which the format defines as little-endian.
#if !_endian(little)
#error("training checkpoints assume a little-endian machine")
#endif

/// 64-bit FNV-1a (integrity and identity digests, not security).
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add<B: Sequence>(_ bytes: B) where B.Element == UInt8 {
        for b in bytes { value = (value ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    }

    var hex: String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    static func hex(of data: Data) -> String {
        var h = FNV1a()
        data.withUnsafeBytes { h.add($0) }
        return h.hex
    }
}
