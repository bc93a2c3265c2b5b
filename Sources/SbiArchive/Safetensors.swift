// The safetensors layout (huggingface/safetensors): an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}}, then the raw little-endian tensor bytes.
import Foundation
import SbiCore

public enum Safetensors {
    /// Serialises every slot of `arena` as an F32 tensor (names sorted, header padded to 8 bytes).
    public static func encode(_ arena: Arena, metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var body = Data()
        for slot in arena.layout.slots.sorted(by: { $0.name < $1.name }) {
            let begin = body.count
            let values = UnsafeBufferPointer(start: arena.pointer(slot), count: slot.count)
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { body.append(contentsOf: $0) } }
            header[slot.name] = ["dtype": "F32", "shape": slot.shape, "data_offsets": [begin, body.count]] as [String: Any]
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(body)
        return out
    }

    /// Reads tensors into a fresh arena of `layout`; every slot must be present as F32 with its exact shape.
    public static func decode(_ data: Data, layout: ParameterLayout, source: String) throws -> Arena {
        func bad(_ what: String) -> SbiError {
            SbiError(.badInput, "\(source): weights.safetensors \(what)",
                     hint: "the archive is damaged or was not written by sbiwatch; rebuild it with the command in its README.md")
        }
        guard data.count >= 8 else { throw bad("is shorter than its 8-byte header length") }
        let n = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | (UInt64($1.element) << (8 * UInt64($1.offset))) }
        guard n <= UInt64(data.count - 8), n <= 100_000_000 else { throw bad("declares a header of \(n) bytes, larger than the file") }
        let headerData = data.subdata(in: 8..<(8 + Int(n)))
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw bad("has a header that is not a JSON object")
        }
        let body = data.subdata(in: (8 + Int(n))..<data.count)
        let arena = Arena(layout: layout)
        let known = Set(layout.slots.map(\.name))
        for key in header.keys where key != "__metadata__" && !known.contains(key) {
            throw bad("holds tensor '\(key)' that this network does not have")
        }
        for slot in layout.slots {
            guard let entry = header[slot.name] as? [String: Any] else { throw bad("lacks tensor '\(slot.name)'") }
            guard entry["dtype"] as? String == "F32" else { throw bad("stores '\(slot.name)' as \(entry["dtype"] ?? "?"), not F32") }
            guard let shape = entry["shape"] as? [Int], shape == slot.shape else {
                throw bad("gives '\(slot.name)' the shape \(entry["shape"] ?? "?"), the manifest's network needs \(slot.shape)")
            }
            guard let offs = entry["data_offsets"] as? [Int], offs.count == 2, offs[0] >= 0, offs[1] >= offs[0],
                  offs[1] <= body.count, offs[1] - offs[0] == 4 * slot.count else {
                throw bad("has invalid data offsets for '\(slot.name)'")
            }
            let p = arena.pointer(slot)
            body.withUnsafeBytes { raw in
                for i in 0..<slot.count {
                    let bits = raw.loadUnaligned(fromByteOffset: offs[0] + 4 * i, as: UInt32.self)
                    p[i] = Float(bitPattern: UInt32(littleEndian: bits))
                }
            }
        }
        for i in 0..<layout.totalCount where !arena.base[i].isFinite {
            throw bad("contains a NaN or infinite weight")
        }
        return arena
    }
}
