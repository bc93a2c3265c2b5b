import CArchive
import Foundation
import XCTest
import SbiTestSupport
@testable import SbiArchive
@testable import SbiCore
@testable import SbiModel
@testable import SbiTasks
import SbiTraining

/// Writes a gzip'd tar with libarchive, entry by entry, so tests can build hostile archives.
struct RawEntry {
    var name: String
    var data = Data()
    var type: UInt32 = SBI_AE_IFREG
    var symlink: String? = nil
    /// declared size (defaults to data.count)
    var declaredSize: Int? = nil
}

func rawArchive(_ entries: [RawEntry]) -> Data {
    let a = archive_write_new()!
    archive_write_set_format_pax_restricted(a)
    archive_write_add_filter_gzip(a)
    let cap = entries.reduce(0) { $0 + $1.data.count } * 2 + 65536
    let buf = UnsafeMutableRawPointer.allocate(byteCount: cap, alignment: 16)
    var used = 0
    archive_write_open_memory(a, buf, cap, &used)
    for e in entries {
        let entry = archive_entry_new()!
        archive_entry_set_pathname(entry, e.name)
        archive_entry_set_filetype(entry, e.type)
        archive_entry_set_perm(entry, 0o644)
        if let link = e.symlink { archive_entry_set_symlink(entry, link) }
        archive_entry_set_size(entry, la_int64_t(e.type == SBI_AE_IFREG ? (e.declaredSize ?? e.data.count) : 0))
        archive_write_header(a, entry)
        if e.type == SBI_AE_IFREG && !e.data.isEmpty { _ = e.data.withUnsafeBytes { archive_write_data(a, $0.baseAddress, e.data.count) } }
        archive_entry_free(entry)
    }
    archive_write_close(a)
    archive_write_free(a)
    let out = Data(bytes: buf, count: used)
    buf.deallocate()
    return out
}

func tinyModel() -> ScoreModel {
    let spec = TwoMoonsTask().spec
    let settings = NetworkSettings(preset: .small, sde: .defaultVE, mask: .undirected)
    let t = Transformer(config: ScoreModel.transformerConfig(spec: spec, settings: settings))
    return ScoreModel(spec: spec, settings: settings, params: t.initialParameters(key: RandomKey(seed: 9)),
                      normalization: Normalization(mean: [0.1, 0.2, 0.3, 0.4], std: [1, 2, 3, 4]))
}

func tinyProvenance() -> Provenance {
    Provenance(task: "two_moons", simulationsSHA256: nil, simulations: 100, seed: 1,
               training: TrainingSummary(steps: 1, stepsPlanned: 1, batchSize: 10, finalTrainLoss: 1, bestValidationLoss: 1,
                                         bestValidationStep: 1, stoppedEarly: false, seconds: 0),
               command: "sbiwatch train --task two_moons", sbiwatchVersion: "test")
}

final class ArchiveTests: TemporaryDirectoryTestCase {




    func testRoundTripKeepsEveryWeightAndTheManifest() throws {
        let model = tinyModel()
        let data = try ModelArchive.encode(model, sampler: SamplerSettings(method: .ode, steps: 77), provenance: tinyProvenance())
        // same model, same bytes (no timestamps)
        XCTAssertEqual(data, try ModelArchive.encode(model, sampler: SamplerSettings(method: .ode, steps: 77), provenance: tinyProvenance()))
        let digest = try ModelArchive.save(data, to: path("m.sbim"))
        let loaded = try ModelArchive.load(path("m.sbim") + "@sha256:" + digest)
        XCTAssertEqual(loaded.sha256, digest)
        XCTAssertEqual(loaded.manifest.sampler, SamplerSettings(method: .ode, steps: 77))
        XCTAssertEqual(loaded.manifest.spec, model.spec)
        XCTAssertEqual(loaded.model.normalization, model.normalization)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: loaded.model.params.base, count: model.params.count)),
                       Array(UnsafeBufferPointer(start: model.params.base, count: model.params.count)))
        // the tar is a normal one: tar(1) lists it
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
        p.arguments = ["tzf", path("m.sbim")]
        let pipe = Pipe(); p.standardOutput = pipe
        try p.run(); p.waitUntilExit()
        let listing = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(listing.split(separator: "\n"), ["manifest.json", "weights.safetensors", "README.md"])
    }

    /// The safetensors blob follows the published layout: u64 header length, JSON, F32 data.
    func testSafetensorsLayout() throws {
        let model = tinyModel()
        let blob = try Safetensors.encode(model.params)
        let n = Int(blob.prefix(8).enumerated().reduce(UInt64(0)) { $0 | (UInt64($1.element) << (8 * UInt64($1.offset))) })
        XCTAssertEqual(n % 8, 0)
        let header = try JSONSerialization.jsonObject(with: blob.subdata(in: 8..<(8 + n))) as! [String: Any]
        let head = header["head.w"] as! [String: Any]
        XCTAssertEqual(head["dtype"] as? String, "F32")
        XCTAssertEqual(head["shape"] as? [Int], [50, 1])
        let offs = head["data_offsets"] as! [Int]
        let first = blob.subdata(in: (8 + n + offs[0])..<(8 + n + offs[0] + 4)).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        XCTAssertEqual(Float(bitPattern: UInt32(littleEndian: first)), model.params.pointer(model.transformer.slots.headW)[0])
    }

    func testPinMismatchIsRefused() throws {
        let data = try ModelArchive.encode(tinyModel(), sampler: SamplerSettings(), provenance: tinyProvenance())
        try ModelArchive.save(data, to: path("m.sbim"))
        let wrong = String(repeating: "ab", count: 32)
        XCTAssertThrowsError(try ModelArchive.load(path("m.sbim") + "@sha256:" + wrong)) { e in
            XCTAssertEqual((e as? SbiError)?.code, .configuration)
            XCTAssert("\(e)".contains(wrong), "\(e)")
        }
        XCTAssertThrowsError(try ModelArchive.load(path("m.sbim") + "@sha256:1234")) { e in
            XCTAssertEqual((e as? SbiError)?.code, .usage)
        }
        XCTAssertThrowsError(try ModelArchive.load(path("missing.sbim"))) { e in
            XCTAssertEqual((e as? SbiError)?.code, .noInput)
        }
    }

    /// Each hostile archive is refused with a message naming the problem.
    func testHostileArchivesAreRefused() throws {
        let good = try ModelArchive.encode(tinyModel(), sampler: SamplerSettings(), provenance: tinyProvenance())
        let files = try TarIO.read(good, source: "good", allowed: ModelArchive.entryNames)
        let manifest = files["manifest.json"]!, weights = files["weights.safetensors"]!
        let cases: [(String, Data, String)] = [
            ("absolute name", rawArchive([RawEntry(name: "/etc/manifest.json", data: manifest)]), "outside the archive"),
            ("dot-dot name", rawArchive([RawEntry(name: "../manifest.json", data: manifest)]), "outside the archive"),
            ("symlink", rawArchive([RawEntry(name: "manifest.json", type: SBI_AE_IFLNK, symlink: "/etc/passwd")]), "not a regular file"),
            ("device", rawArchive([RawEntry(name: "manifest.json", type: SBI_AE_IFCHR)]), "not a regular file"),
            ("directory", rawArchive([RawEntry(name: "models", type: SBI_AE_IFDIR)]), "not a regular file"),
            ("duplicate", rawArchive([RawEntry(name: "manifest.json", data: manifest), RawEntry(name: "manifest.json", data: manifest)]), "twice"),
            ("unknown entry", rawArchive([RawEntry(name: "evil.sh", data: Data("rm -rf /".utf8))]), "unexpected entry"),
            ("oversized", rawArchive([RawEntry(name: "weights.safetensors", data: Data(count: 1024), declaredSize: TarIO.maxEntryBytes + 1)]), "limit"),
            ("not gzip", Data("hello, this is not an archive".utf8), "not a gzip-compressed tar"),
            ("truncated", good.prefix(good.count / 2), "truncated"),
            ("empty", Data(), "not a gzip-compressed tar"),
        ]
        for (what, data, expected) in cases {
            XCTAssertThrowsError(try ModelArchive.decode(data, source: "hostile.sbim", sha256: "x"), what) { e in
                XCTAssertEqual((e as? SbiError)?.code, .badInput, what)
                XCTAssert("\(e)".contains(expected), "\(what): \(e)")
                XCTAssert("\(e)".contains("hostile.sbim"), "\(what): \(e)")
            }
        }
    }

    func testUnknownFormatVersionAndMismatchedWeightsAreRefused() throws {
        let good = try ModelArchive.encode(tinyModel(), sampler: SamplerSettings(), provenance: tinyProvenance())
        let files = try TarIO.read(good, source: "good", allowed: ModelArchive.entryNames)
        var manifest = try JSONSerialization.jsonObject(with: files["manifest.json"]!) as! [String: Any]
        manifest["formatVersion"] = 99
        let future = rawArchive([RawEntry(name: "manifest.json", data: try JSONSerialization.data(withJSONObject: manifest)),
                                 RawEntry(name: "weights.safetensors", data: files["weights.safetensors"]!)])
        XCTAssertThrowsError(try ModelArchive.decode(future, source: "future.sbim", sha256: "x")) { e in
            XCTAssert("\(e)".contains("format version 99"), "\(e)")
        }
        // weights of a different network (large preset) under the small manifest
        let spec = TwoMoonsTask().spec
        let large = Transformer(config: ScoreModel.transformerConfig(spec: spec, settings: NetworkSettings(preset: .large)))
        let wrongWeights = rawArchive([RawEntry(name: "manifest.json", data: files["manifest.json"]!),
                                       RawEntry(name: "weights.safetensors", data: try Safetensors.encode(large.initialParameters(key: RandomKey(seed: 1))))])
        XCTAssertThrowsError(try ModelArchive.decode(wrongWeights, source: "mixed.sbim", sha256: "x")) { e in
            XCTAssert("\(e)".contains("weights.safetensors"), "\(e)")
        }
    }
}

/// `train --simulations` holds a split out of training and early stopping for its calibration pass:
/// a fifth of the rows (at most 1,500), disjoint from the training rows, up to 500 of them references,
/// the same split for the same seed and another for another seed.
final class CalibrationSplitTests: XCTestCase {
    func testHeldOutRowsNeverReachTraining() {
        for count in [200, 1000, 20000] {
            let split = CalibrationSplit(count: count, seed: 4)
            let held = split.references + split.cases
            XCTAssertEqual(held.count, min(count / 5, 1500))
            XCTAssertEqual(split.references.count, min(500, held.count / 2))
            XCTAssertTrue(Set(held).isDisjoint(with: split.training))
            XCTAssertEqual(Set(held).union(split.training), Set(0..<count), "every row is used once")
            XCTAssertEqual(Set(held).count, held.count)
            XCTAssertEqual(CalibrationSplit(count: count, seed: 4), split)
            XCTAssertNotEqual(CalibrationSplit(count: count, seed: 5), split)
        }
    }
}
