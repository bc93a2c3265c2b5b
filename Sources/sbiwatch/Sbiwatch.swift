import ArgumentParser
import Foundation
import SbiArchive
import SbiCore
import SbiNetCDF


@main
struct Sbiwatch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sbiwatch",
        abstract: "Turn observation files into posterior samples with one all-conditional diffusion model.",
        version: versionText(),
        subcommands: [Watch.self, Process.self, Train.self, Calibrate.self, Sample.self, Inspect.self, Models.self, Simulate.self, Bench.self, Generate.self, ProbeNetCDF.self],
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
            try refuseUnknownCommand(Array(CommandLine.arguments.dropFirst()))
            var command = try parseAsRoot()
            try command.run()
        } catch let e as SbiError {
            FileHandle.standardError.write(Data("sbiwatch: \(e)\n".utf8))
            Foundation.exit(e.exitStatus)
        } catch {
            exit(withError: error)
        }
    }

    /// The default command (watch) takes only options, so a first word that is no command is a
    /// mistyped command, not a stray argument of `watch`.
    static func refuseUnknownCommand(_ arguments: [String]) throws {
        guard let first = arguments.first, !first.hasPrefix("-") else { return }
        let names = configuration.subcommands.map { $0._commandName } + ["help"]
        guard !names.contains(first) else { return }
        let shown = configuration.subcommands.filter { $0.configuration.shouldDisplay }.map { $0._commandName }
        throw SbiError(.usage, "unknown command '\(first)' (commands: \(shown.joined(separator: ", ")))",
                       hint: "see `sbiwatch help`; the default command, watch, takes options only: sbiwatch --inbox DIR --outbox DIR")
    }

    static func versionText() -> String {
        "sbiwatch \(sbiwatchVersion) (netCDF \(NetCDF.libraryVersion); \(ModelArchive.libraryVersion); OpenBLAS \(BLAS.libraryVersion))"
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
