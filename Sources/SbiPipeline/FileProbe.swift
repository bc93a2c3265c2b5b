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
    /// Runs `executable arguments... FILE`; exit status 0 means the file reads as NetCDF, otherwise
    /// the child prints its `ProbeVerdict` (the error reading it gave) on standard output.
    case executable(String, arguments: [String])

    public enum Result: Equatable, Sendable {
        case valid
        /// The read failed; the child's error when it could say.
        case invalid(ProbeVerdict?)
        /// The child process died from this signal reading the file.
        case crashed(Int32)
        /// Reading took longer than `timeout`.
        case timedOut
        /// The child could not be started (the machine, not the file).
        case unavailable(String)
    }

    /// The in-process check of the pipeline's reader.
    public static let netCDFInProcess = FileProbe.inProcess { ObservationFile.opens($0) }

    /// This binary's own `probe-netcdf` subcommand, in a child process.
    public static func childProcess(executable: String) -> FileProbe { .executable(executable, arguments: ["probe-netcdf"]) }

    /// Seconds a child-process probe may take before it is killed.
    public static let timeout: TimeInterval = 30
    /// The address space a probing child may use (`ProbeVerdict.limitMemory`): netCDF-C allocates
    /// gigabytes for some damaged headers of a few hundred bytes; under the limit it fails instead.
    public static let memoryLimit = 4 << 30

    public func check(_ path: String, timeout: TimeInterval = FileProbe.timeout) -> Result {
        switch self {
        case .inProcess(let check): return check(path) ? .valid : .invalid(nil)
        case .executable(let exe, let arguments): return Self.run(exe, arguments + [path], timeout: timeout)
        }
    }

    private static func run(_ exe: String, _ arguments: [String], timeout: TimeInterval) -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        var env = ProcessInfo.processInfo.environment
        env["SBIWATCH_NO_REEXEC"] = "1"
        p.environment = env
        let exited = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in exited.signal() }
        do { try p.run() } catch { return .unavailable("\(error)") }
        // a probe that hangs (a file netCDF blocks or churns on) is killed
        if exited.wait(timeout: .now() + timeout) == .timedOut {
            kill(p.processIdentifier, SIGKILL)
            exited.wait()
            return .timedOut
        }
        if p.terminationReason == .uncaughtSignal { return .crashed(p.terminationStatus) }
        if p.terminationStatus == 0 { return .valid }
        let printed = out.fileHandleForReading.readDataToEndOfFile()
        return .invalid(try? JSONDecoder().decode(ProbeVerdict.self, from: printed))
    }

    /// Before a file is read in this process: a file the child could not read is refused with the
    /// child's error, one that crashed it or ran out of time is refused as damaged. Only a file the
    /// child read completely, within the memory and time limits, is read here.
    public func vet(_ input: InputFile) throws {
        func refuse(_ why: String) -> SbiError {
            SbiError(.badInput, why, hint: "check it with `ncdump -h`; write it again from its source", subject: input.displayName)
        }
        switch check(input.path) {
        case .valid: return
        case .invalid(let verdict?): throw verdict.error.about(input.displayName)
        case .invalid(nil): throw refuse("this file cannot be read as NetCDF in a test process")
        case .crashed(let signal):
            throw refuse("the netCDF library crashed (signal \(signal)) reading this file in a test process; it is damaged, and sbiwatch does not read it")
        case .timedOut:
            throw refuse("reading this file took more than \(Int(Self.timeout)) s in a test process; it is damaged or hostile, and sbiwatch does not read it")
        case .unavailable(let why):
            // not the file's fault: it goes back to be tried again
            throw SbiError(.temporary, "the test read of this file could not be started (\(why))",
                           hint: "check that the sbiwatch binary is still installed and the machine can start processes", subject: input.displayName)
        }
    }
}

/// What `probe-netcdf` prints when a file cannot be read: the error, as JSON.
public struct ProbeVerdict: Codable, Equatable, Sendable {
    public var code: SbiError.Code
    public var message: String
    public var hint: String?

    public init(_ e: SbiError) { code = e.code; message = e.message; hint = e.hint }

    public var error: SbiError { SbiError(code, message, hint: hint) }

    /// The probing child's limits: its address space capped at `FileProbe.memoryLimit`.
    public static func limitMemory() {
        var limit = rlimit(rlim_cur: rlim_t(FileProbe.memoryLimit), rlim_max: rlim_t(FileProbe.memoryLimit))
        _ = setrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit)
    }
}
