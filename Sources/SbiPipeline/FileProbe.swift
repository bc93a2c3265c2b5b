// How a file is checked to read as NetCDF before it is read in this process. netCDF-C and HDF5
// crash on some damaged files (fuzzing found such files: a SIGSEGV inside nc_open of a corrupt
// classic header), so the command line runs the check in a child process, `sbiwatch probe-netcdf
// FILE`, which reads the file the way the pipeline will (header, attributes, every numeric
// variable). The daemon asks it of unclaimed inbox files (is it ready?), and the pipeline asks it
// before opening a file in-process: a file that crashes the child is refused with an error report
// instead of taking the process down. Tests and embedders may check in-process.
import Dispatch
import Foundation
import SbiCore

public enum FileProbe: Sendable {
    /// Calls the function in this process (it cannot report a crash: it would crash this process).
    case inProcess(@Sendable (String) -> Bool)
    /// Runs `executable arguments... FILE`; exit status 0 means the file reads as NetCDF.
    case executable(String, arguments: [String])

    public enum Result: Equatable, Sendable {
        case valid, invalid
        /// The child process died from this signal reading the file.
        case crashed(Int32)
    }

    /// The in-process check of the pipeline's reader.
    public static let netCDFInProcess = FileProbe.inProcess { ObservationFile.opens($0) }

    /// This binary's own `probe-netcdf` subcommand, in a child process.
    public static func childProcess(executable: String) -> FileProbe { .executable(executable, arguments: ["probe-netcdf"]) }

    /// Seconds a child-process probe may take before it is killed and the file taken as not valid.
    static let timeout: TimeInterval = 30

    public func check(_ path: String) -> Result {
        switch self {
        case .inProcess(let check): return check(path) ? .valid : .invalid
        case .executable(let exe, let arguments): return Self.run(exe, arguments + [path])
        }
    }

    private static func run(_ exe: String, _ arguments: [String]) -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        var env = ProcessInfo.processInfo.environment
        env["SBIWATCH_NO_REEXEC"] = "1"
        p.environment = env
        let exited = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in exited.signal() }
        do { try p.run() } catch { return .invalid }
        // a probe that hangs (a file netCDF blocks on) is killed: the file is not valid
        if exited.wait(timeout: .now() + timeout) == .timedOut {
            kill(p.processIdentifier, SIGKILL)
            exited.wait()
            return .invalid
        }
        if p.terminationReason == .uncaughtSignal { return .crashed(p.terminationStatus) }
        return p.terminationStatus == 0 ? .valid : .invalid
    }

    /// Before a file is read in this process: refuses one that crashed the probe.
    public func refuseIfCrashing(_ input: InputFile) throws {
        guard case .crashed(let signal) = check(input.path) else { return }
        throw SbiError(.badInput, "the netCDF library crashed (signal \(signal)) reading this file in a test process; it is damaged, and sbiwatch does not read it",
                       hint: "check it with `ncdump -h`; write it again from its source", subject: input.displayName)
    }
}
