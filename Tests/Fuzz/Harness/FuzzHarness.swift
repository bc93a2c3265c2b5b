// Fuzz harness for the two readers of outside bytes (`make fuzz`; not run by CI):
//   FUZZ_TARGET=observation  the bytes are an observation file: read as `probe-netcdf` reads it,
//                            then mapped onto each shipped model
//   FUZZ_TARGET=archive      byte 0 even: the rest is a model archive, decoded whole;
//                            byte 0 odd: the rest is a manifest.json, decoded and validated, and a
//                            model built from it (fresh weights) samples one draw in 2 steps
// Built with -sanitize=fuzzer -DFUZZING, libFuzzer provides main and calls LLVMFuzzerTestOneInput.
// Built without, this is a replay tool: `sbiwatch-fuzz FILE...` runs the harness on each file
// (a crash reproducer, or a corpus), so the harness compiles and runs in every build.
import Foundation
import SbiArchive
import SbiCore
import SbiModel
import SbiPipeline

enum FuzzHarness {
    /// The shipped models (FUZZ_MODELS, default fixtures/models), loaded once.
    static let models: [LoadedModel] = {
        let dir = ProcessInfo.processInfo.environment["FUZZ_MODELS"] ?? "fixtures/models"
        return ["gaussian-linear", "lotka-volterra", "sird"].compactMap { try? ModelArchive.load("\(dir)/\($0).sbim") }
    }()
    static let target = ProcessInfo.processInfo.environment["FUZZ_TARGET"] ?? "observation"
    static let scratch = "/dev/shm/sbiwatch-fuzz-\(getpid()).nc"

    /// The memory cap of the probing child: netCDF-C then fails on headers that ask for gigabytes
    /// (as in production) instead of stalling the fuzzer.
    /// FUZZ_NO_MEMORY_LIMIT=1 replays without it (to tell a library's failure path from our code).
    static let limited: Void = {
        if ProcessInfo.processInfo.environment["FUZZ_NO_MEMORY_LIMIT"] == nil { ProbeVerdict.limitMemory() }
    }()

    static func run(_ data: Data) {
        _ = limited
        if target == "archive" { archive(data) } else { observation(data) }
    }

    static func observation(_ data: Data) {
        guard (try? data.write(to: URL(fileURLWithPath: scratch))) != nil else { return }
        try? ObservationFile.probe(scratch)
        guard let file = try? ObservationFile(path: scratch) else { return }
        defer { file.close() }
        for m in models { _ = try? file.observation(for: m.model.spec, normalization: m.model.normalization) }
    }

    static func archive(_ data: Data) {
        guard let mode = data.first else { return }
        let rest = Data(data.dropFirst())
        guard mode & 1 == 1 else {
            _ = try? ModelArchive.decode(rest, source: "fuzz.sbim", sha256: "")
            return
        }
        guard let manifest = try? ModelArchive.decodeManifest(rest, source: "manifest.json") else { return }
        let transformer = Transformer(config: manifest.transformer)
        guard transformer.layout.totalCount <= 1_000_000 else { return }
        let model = ScoreModel(spec: manifest.spec, settings: manifest.network, config: manifest.transformer,
                               params: transformer.initialParameters(key: RandomKey(seed: 1)), normalization: manifest.normalization)
        guard manifest.spec.variables.allSatisfy({ $0.time == nil }) else { return }
        _ = try? Sampler.sample(model, Conditioning(), count: 1, settings: SamplerSettings(method: .sde, steps: 2), key: RandomKey(seed: 2))
    }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let bytes else { return 0 }
    FuzzHarness.run(Data(bytes: bytes, count: size))
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// SwiftPM links an executable's `main` to this symbol; it hands the command line to libFuzzer.
@_cdecl("sbiwatch_fuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { bytes, size in fuzzOneInput(bytes, size) }
}
#else
@main
struct Replay {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else { print("cannot read \(path)"); continue }
            FuzzHarness.run(data)
            print("ok \(path)")
        }
    }
}
#endif
