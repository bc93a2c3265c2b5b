// Which build of attention's inner kernels runs: the 8-wide AVX2 ones of this module, or the
// 16-wide twins in SbiKernelsAVX512 on CPUs with AVX-512. Both give the same bits (the same
// arithmetic lane for lane), so the choice changes speed only.
import Foundation
import SbiKernelsAVX512

public enum KernelPath: String, Codable, CaseIterable, Sendable {
    case avx2
    case avx512

    /// The instructions the 16-wide kernels are compiled for (skylake-avx512).
    static let avx512Flags = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]

    /// Whether this CPU can run the 16-wide kernels (read from /proc/cpuinfo; false elsewhere).
    public static let avx512Available: Bool = {
        #if arch(x86_64)
        guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
        let flags = Set(line.split(separator: " ").map(String.init))
        return avx512Flags.allSatisfy(flags.contains)
        #else
        return false
        #endif
    }()

    /// The best path this CPU runs, unless SBIWATCH_KERNELS=avx2 asks for the 8-wide one.
    public static let detected: KernelPath = {
        if ProcessInfo.processInfo.environment["SBIWATCH_KERNELS"] == "avx2" { return .avx2 }
        return avx512Available ? .avx512 : .avx2
    }()

    /// The path attention uses. Starts as `detected`; `bench throughput` switches it between runs
    /// to compare both in one process. Set it only while no network is running.
    nonisolated(unsafe) public static var current: KernelPath = detected

    /// Whether this CPU can run `self`.
    public var isAvailable: Bool { self == .avx2 || KernelPath.avx512Available }
}

/// SbiCore's smallGemm or its 16-wide twin, by `KernelPath.current` (same contract, same bits).
@inline(__always)
func headGemm(_ c: UnsafeMutablePointer<Float>, _ ldc: Int,
              _ a: UnsafePointer<Float>, _ aRow: Int, _ aCol: Int,
              _ b: UnsafePointer<Float>, _ ldb: Int,
              _ m: Int, _ n: Int, _ k: Int, accumulate: Bool) {
    if KernelPath.current == .avx512 {
        smallGemm512(c, ldc, a, aRow, aCol, b, ldb, m, n, k, accumulate: accumulate)
    } else {
        smallGemm(c, ldc, a, aRow, aCol, b, ldb, m, n, k, accumulate: accumulate)
    }
}
