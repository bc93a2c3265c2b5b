import ArgumentParser
import Foundation
import SbiCore
import SbiPipeline

/// Reads a file the way the pipeline will (header, attributes, every numeric variable) and exits 0
/// if that works; otherwise prints the error as JSON (ProbeVerdict) and exits with its status. The
/// daemon and `process` run this in a child process, with the address space capped, before they
/// read a file themselves: a file that crashes or exhausts the NetCDF/HDF5 libraries stops only
/// the child.
struct ProbeNetCDF: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "probe-netcdf", shouldDisplay: false)

    @Argument var file: String

    func run() throws {
        ProbeVerdict.limitMemory()
        do {
            try ObservationFile.probe(file)
        } catch let e as SbiError {
            let verdict = (try? JSONEncoder().encode(ProbeVerdict(e))) ?? Data()
            FileHandle.standardOutput.write(verdict)
            throw ExitCode(e.exitStatus)
        }
    }
}
