import ArgumentParser
import CArchive
import CBLAS
import CNetCDF
import Foundation
import SbiCore

/// The version printed by `--version` and recorded in every output.
let sbiwatchVersion = "0.1.0"

@main
struct Sbiwatch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sbiwatch",
        abstract: "Turn observation files into posterior samples with one all-conditional diffusion model.",
        version: versionText(),
        subcommands: [Bench.self])

    static func main() {
        BLASEnvironment.reexecWithTunedKernelsIfNeeded()
        BLAS.useSingleThread()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

    static func versionText() -> String {
        let nc = String(cString: nc_inq_libvers())
        let ar = String(cString: archive_version_string())
        let blas = String(cString: openblas_get_config()).trimmingCharacters(in: .whitespaces)
        return "sbiwatch \(sbiwatchVersion) (netCDF \(nc); \(ar); OpenBLAS \(blas))"
    }
}

/// OpenBLAS reads OPENBLAS_CORETYPE once, when it loads. On AVX-512 CPUs it otherwise picks its
/// AVX2 kernels, at about half the speed, so the process re-executes itself once with the variable set.
enum BLASEnvironment {
    static func reexecWithTunedKernelsIfNeeded() {
        guard getenv("OPENBLAS_CORETYPE") == nil, getenv("SBIWATCH_NO_REEXEC") == nil else { return }
        guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flags = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              flags.split(separator: " ").contains("avx512f") else { return }
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1)
        setenv("SBIWATCH_NO_REEXEC", "1", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)  // returns only on failure: keep the default kernels
    }
}
