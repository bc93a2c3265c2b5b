import ArgumentParser
import SbiPipeline

/// Opens a file as NetCDF and exits 0 if that works (65 if not). The daemon runs this in a child
/// process to check files it has not claimed yet, so a file that crashes the NetCDF/HDF5 libraries
/// cannot take the daemon down before its attempts are counted.
struct ProbeNetCDF: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "probe-netcdf", shouldDisplay: false)

    @Argument var file: String

    func run() throws {
        try ObservationFile.probe(file)
    }
}
