// Throughput measurements reported by `sbiwatch bench`: single-core sgemm peak and the
// network's forward(+backward) speed, all in one run so ratios are comparable.
import Dispatch
import Foundation

public struct ThroughputEntry: Codable, Sendable {
    public var name: String
    public var config: String
    public var batch: Int
    public var tokens: Int
    public var backward: Bool
    public var threads: Int
    /// Which build of attention's inner kernels ran (`KernelPath`).
    public var kernels: String = KernelPath.current.rawValue
    public var secondsPerPass: Double
    public var tokensPerSecond: Double
    public var gflops: Double
    /// achieved GFLOP/s / (single-core sgemm GFLOP/s x threads)
    public var fractionOfSgemmPeak: Double
    /// The fraction of sgemm peak the pass would reach if its linear layers' products ran at the
    /// speed one-core OpenBLAS reaches on their own shapes and everything else (attention, LayerNorm,
    /// GELU, embeddings) cost nothing: an upper bound no kernel work on our side can pass.
    public var linearLayerCeiling: Double?

    enum CodingKeys: String, CodingKey {
        case name, config, batch, tokens, backward, threads, kernels
        case secondsPerPass = "seconds_per_pass", tokensPerSecond = "tokens_per_second"
        case gflops, fractionOfSgemmPeak = "fraction_of_sgemm_peak"
        case linearLayerCeiling = "linear_layer_ceiling"
    }
}

/// One-core sgemm at one product shape of the network: C (M,N) = op(A) op(B) with inner size K.
public struct SgemmShape: Codable, Sendable {
    public var m: Int, n: Int, k: Int
    public var transA: Bool, transB: Bool
    public var gflops: Double
    public var fractionOfPeak: Double

    enum CodingKeys: String, CodingKey {
        case m, n, k, gflops
        case transA = "trans_a", transB = "trans_b", fractionOfPeak = "fraction_of_peak"
    }

    /// The linear layers' products of one chunk of `rows` token rows (forward; with the backward's
    /// input and weight gradients when `train`), each with its multiplicity per layer.
    static func linearProducts(_ c: TransformerConfig, rows: Int, train: Bool) -> [(m: Int, n: Int, k: Int, transA: Bool, transB: Bool)] {
        let width = c.width, layers = [(width, 3 * c.attentionWidth), (c.attentionWidth, width), (width, c.hiddenWidth), (c.hiddenWidth, width)]
        var out: [(m: Int, n: Int, k: Int, transA: Bool, transB: Bool)] = []
        for (inDim, outDim) in layers {
            out.append((rows, outDim, inDim, false, false))
            if train {
                out.append((rows, inDim, outDim, false, true))    // d input = d out @ W^T
                out.append((inDim, outDim, rows, true, false))    // d weight = input^T @ d out
            }
        }
        return out
    }
}

public struct ThroughputReport: Codable, Sendable {
    public var sgemmSize: Int
    public var sgemmGflopsOneCore: Double
    /// OpenBLAS's kernels in this process ("Haswell": 256-bit; "SkylakeX": 512-bit): the sgemm peak,
    /// and so every fraction of it, depends on them.
    public var openblasCore: String = BLAS.coreName
    /// Set when the environment pins OpenBLAS to kernels slower than this CPU runs: says so and how to undo it.
    public var openblasNote: String?
    public var entries: [ThroughputEntry]
    /// One-core sgemm at the linear layers' shapes of the measured configurations.
    public var layerShapes: [SgemmShape] = []

    enum CodingKeys: String, CodingKey {
        case sgemmSize = "sgemm_size", sgemmGflopsOneCore = "sgemm_gflops_one_core", entries
        case openblasCore = "openblas_core", openblasNote = "openblas_note"
        case layerShapes = "sgemm_at_layer_shapes"
    }

    public var text: String {
        var s = "sgemm \(sgemmSize)^3, one core: \(fmt(sgemmGflopsOneCore)) GFLOP/s (OpenBLAS \(openblasCore) kernels)\n"
        if let openblasNote { s += "note: \(openblasNote)\n" }
        for e in entries {
            s += "\(e.name) (\(e.kernels) kernels): \(fmt(e.tokensPerSecond, 0)) tokens/s, \(fmt(e.gflops)) GFLOP/s on \(e.threads) threads, "
            s += "\(fmt(e.fractionOfSgemmPeak, 2)) of sgemm peak, \(fmt(e.secondsPerPass * 1000)) ms/pass"
            if let c = e.linearLayerCeiling { s += " (ceiling if only its linear layers cost time: \(fmt(c, 2)))" }
            s += "\n"
        }
        for g in layerShapes {
            s += "  sgemm \(g.m)x\(g.k)\(g.transA ? "^T" : "") @ \(g.k)x\(g.n)\(g.transB ? "^T" : ""): \(fmt(g.gflops)) GFLOP/s, \(fmt(g.fractionOfPeak, 2)) of peak\n"
        }
        return s
    }
}

/// x rounded to `digits` decimals, as text (for progress and report lines).
public func fmt(_ x: Double, _ digits: Int = 1) -> String {
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    return String((x * p).rounded() / p)
}

public struct ThroughputBench {
    public var seconds: Double
    public var threads: Int
    /// Measure only configurations whose name contains this text (nil: all).
    public var only: String?
    /// The kernel builds to measure each configuration with, in this order (each must be available).
    public var kernelPaths: [KernelPath]
    public init(seconds: Double, threads: Int, only: String? = nil, kernelPaths: [KernelPath] = [KernelPath.current]) {
        self.seconds = seconds; self.threads = threads; self.only = only; self.kernelPaths = kernelPaths
    }

    public func run(progress: (String) -> Void) -> ThroughputReport {
        BLAS.useSingleThread()
        let n = 2048
        progress("measuring sgemm \(n)^3 on one core")
        let peak = sgemmGflops(n)
        var entries: [ThroughputEntry] = []
        let cases: [(String, TransformerConfig.Preset, Int, Int, Bool)] = [
            ("small_train_b1000_t13", .small, 1000, 13, true),
            ("large_train_b256_t82", .large, 256, 82, true),
            ("large_forward_b256_t182", .large, 256, 182, false),
        ]
        var shapes: [String: SgemmShape] = [:]
        for (name, preset, batch, tokens, train) in cases where only.map({ name.contains($0) }) ?? true {
            let ceiling = linearCeiling(preset: preset, tokens: tokens, train: train, peak: peak, shapes: &shapes)
            for path in kernelPaths {
                progress("measuring \(name) with the \(path.rawValue) kernels")
                let previous = KernelPath.current
                KernelPath.current = path
                defer { KernelPath.current = previous }
                var entry = measure(name: name, preset: preset, batch: batch, tokens: tokens, train: train, peak: peak)
                entry.kernels = path.rawValue
                entry.linearLayerCeiling = ceiling
                entries.append(entry)
            }
        }
        var report = ThroughputReport(sgemmSize: n, sgemmGflopsOneCore: peak, entries: entries)
        report.openblasNote = ThroughputBench.openblasNote(core: report.openblasCore, avx512: KernelPath.avx512Available,
                                                          pinned: getenv("OPENBLAS_CORETYPE").map { String(cString: $0) })
        report.layerShapes = shapes.values.sorted {
            ($0.m, $0.n, $0.k, $0.transA ? 1 : 0, $0.transB ? 1 : 0) < ($1.m, $1.n, $1.k, $1.transA ? 1 : 0, $1.transB ? 1 : 0)
        }
        return report
    }

    /// A note when OPENBLAS_CORETYPE keeps OpenBLAS on 256-bit kernels on an AVX-512 CPU (sbiwatch
    /// otherwise asks for its SkylakeX kernels there, about twice as fast): every fraction of the
    /// sgemm peak is then measured against the slower kernels.
    static func openblasNote(core: String, avx512: Bool, pinned: String?) -> String? {
        guard avx512, let pinned, !core.lowercased().contains("skylakex"), !core.lowercased().contains("cooperlake"),
              !core.lowercased().contains("sapphire") else { return nil }
        return "OPENBLAS_CORETYPE=\(pinned) in the environment keeps OpenBLAS on its \(core) kernels on this AVX-512 CPU, "
            + "so the sgemm peak and the network's products are slower than sbiwatch runs by default; "
            + "unset OPENBLAS_CORETYPE to measure with the SkylakeX kernels"
    }

    /// The configuration's total flops over the time its linear layers' products take at one-core
    /// OpenBLAS speed on their shapes (chunks of `BatchParallel.defaultChunk` examples), as a
    /// fraction of peak; the shapes measured are added to `shapes`.
    func linearCeiling(preset: TransformerConfig.Preset, tokens: Int, train: Bool, peak: Double,
                       shapes: inout [String: SgemmShape]) -> Double {
        let config = TransformerConfig.preset(preset, identifiers: 8, timeIndexed: preset == .large)
        let rows = BatchParallel.defaultChunk(tokens: tokens) * tokens
        var seconds = 0.0
        for p in SgemmShape.linearProducts(config, rows: rows, train: train) {
            let key = "\(p.m) \(p.n) \(p.k) \(p.transA) \(p.transB)"
            if shapes[key] == nil {
                let g = sgemmGflops(m: p.m, n: p.n, k: p.k, transA: p.transA, transB: p.transB)
                shapes[key] = SgemmShape(m: p.m, n: p.n, k: p.k, transA: p.transA, transB: p.transB, gflops: g, fractionOfPeak: g / peak)
            }
            seconds += 2 * Double(p.m * p.n * p.k) / (shapes[key]!.gflops * 1e9)
        }
        let flops = config.forwardFlopsPerToken(tokens: tokens) * Double(rows) * (train ? 3 : 1)
        return flops / Double(config.layers) / seconds / 1e9 / peak
    }

    /// Best of repeated one-core sgemm GFLOP/s at one shape (enough repeats for ~50 ms).
    func sgemmGflops(m: Int, n: Int, k: Int, transA: Bool, transB: Bool) -> Double {
        let a = FloatBuffer(m * k), b = FloatBuffer(k * n), c = FloatBuffer(m * n)
        var rng = RandomStream(seed: 2)
        rng.fillNormal(a.base, count: m * k); rng.fillNormal(b.base, count: k * n)
        let flops = 2 * Double(m * n * k), reps = max(10, Int(5e9 / flops))
        var best = 0.0
        for _ in 0..<5 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<reps {
                BLAS.gemm(transA, transB, m, n, k, 1, a.base, transA ? m : k, b.base, transB ? k : n, 0, c.base, n)
            }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = max(best, flops * Double(reps) / dt / 1e9)
        }
        return best
    }

    func sgemmGflops(_ n: Int) -> Double {
        let a = FloatBuffer(n * n), b = FloatBuffer(n * n), c = FloatBuffer(n * n)
        var rng = RandomStream(seed: 1)
        rng.fillNormal(a.base, count: n * n); rng.fillNormal(b.base, count: n * n)
        var best = 0.0
        for _ in 0..<10 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            BLAS.gemm(false, false, n, n, n, 1, a.base, n, b.base, n, 0, c.base, n)
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = max(best, 2 * Double(n * n * n) / dt / 1e9)
        }
        return best
    }

    func measure(name: String, preset: TransformerConfig.Preset, batch: Int, tokens: Int, train: Bool,
                 peak: Double) -> ThroughputEntry {
        let timeIndexed = preset == .large
        let config = TransformerConfig.preset(preset, identifiers: 8, timeIndexed: timeIndexed)
        let model = Transformer(config: config)
        let params = model.initialParameters(key: RandomKey(seed: 7))
        let grads = Arena(layout: model.layout)
        let input = TokenBatch(capacity: batch, tokens: tokens)
        var rng = RandomStream(seed: 3)
        for i in 0..<(batch * tokens) {
            input.ids[i] = Int32(i % tokens % 8)
            input.values[i] = Float(rng.normal())
            input.observed[i] = rng.uniform() < 0.5 ? 1 : 0
            input.times[i] = Float(rng.uniform())
            input.hasTime[i] = timeIndexed ? 1 : 0
        }
        for e in 0..<batch { input.diffusionTime[e] = Float(rng.uniform()) }
        let runner = BatchParallel(model: model, capacity: batch, tokens: tokens, training: train, threads: threads)
        let pass = {
            if train {
                runner.forwardBackward(params, grads, input.view) { _, count, out, dout in
                    for i in 0..<(count * tokens) { dout[i] = 1e-3 * out[i] }
                    return 0
                }
            } else {
                runner.forward(params, input.view)
            }
        }
        pass()  // warm-up
        var passes = 0
        let t0 = DispatchTime.now().uptimeNanoseconds
        var elapsed = 0.0
        while elapsed < seconds || passes < 2 {
            pass()
            passes += 1
            elapsed = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
        let perPass = elapsed / Double(passes)
        let flops = config.forwardFlopsPerToken(tokens: tokens) * Double(batch * tokens) * (train ? 3 : 1)
        let gflops = flops / perPass / 1e9
        return ThroughputEntry(name: name, config: preset.rawValue, batch: batch, tokens: tokens, backward: train,
                               threads: runner.threads, secondsPerPass: perPass,
                               tokensPerSecond: Double(batch * tokens) / perPass, gflops: gflops,
                               fractionOfSgemmPeak: gflops / (peak * Double(runner.threads)))
    }
}
