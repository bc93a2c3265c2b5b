import SbiNetCDF

/// The input SHA-256 recorded in a samples file.
enum SamplesFileOwner {
    static func sha256(_ path: String) throws -> String? {
        let r = try NetCDFReader(path: path)
        defer { r.close() }
        return try r.textAttribute("sbiwatch_input_sha256")
    }
}
