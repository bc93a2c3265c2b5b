import ArgumentParser
import CArchive
import CBLAS
import CNetCDF
import Foundation
import SbiCore


@main
struct Sbiwatch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sbiwatch",
        abstract: "Turn observation files into posterior samples with one all-conditional diffusion model.",
        version: versionText(),
        subcommands: [Watch.self, Process.self, Train.self, Sample.self, Inspect.self, Simulate.self, Bench.self, ProbeNetCDF.self],
        defaultSubcommand: Watch.self)

    static func main() {
        if let missing = CPUFeatures.missingKernelFeatures() {
            let e = SbiError(.unsupportedMachine, "this CPU lacks \(missing), which sbiwatch's numeric kernels are built for",
                             hint: "run on an x86-64 CPU with AVX2 and FMA (Intel Haswell / AMD Zen or newer)")
            FileHandle.standardError.write(Data("sbiwatch: \(e)\n".utf8))
            Foundation.exit(e.exitStatus)
        }
        BLASEnvironment.reexecWithTunedKernelsIfNeeded()
        BLAS.useSingleThread()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let e as SbiError {
            FileHandle.standardError.write(Data("sbiwatch: \(e)\n".utf8))
            Foundation.exit(e.exitStatus)
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

/// CPU flags from /proc/cpuinfo (Linux, x86-64).
enum CPUFeatures {
    static var flags: Set<Substring> {
        guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
        return Set(line.split(separator: " "))
    }

    /// The kernels are compiled for Haswell (AVX2 + FMA); nil when this CPU has both (or is not x86-64).
    static func missingKernelFeatures() -> String? {
        #if arch(x86_64)
        let f = flags
        guard !f.isEmpty else { return nil }  // no /proc/cpuinfo: cannot tell, assume a modern CPU
        let missing = ["avx2", "fma"].filter { !f.contains(Substring($0)) }
        return missing.isEmpty ? nil : missing.joined(separator: " and ")
        #else
        return nil
        #endif
    }
}

/// OpenBLAS reads OPENBLAS_CORETYPE once, when it loads. On AVX-512 CPUs it otherwise picks its
/// AVX2 kernels, at about half the speed, so the process re-executes itself once with the variable set.
enum BLASEnvironment {
    static func reexecWithTunedKernelsIfNeeded() {
        guard getenv("OPENBLAS_CORETYPE") == nil, getenv("SBIWATCH_NO_REEXEC") == nil else { return }
        guard CPUFeatures.flags.contains("avx512f") else { return }
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1)
        setenv("SBIWATCH_NO_REEXEC", "1", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)  // returns only on failure: keep the default kernels
    }
}
