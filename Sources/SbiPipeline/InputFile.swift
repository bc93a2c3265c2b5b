// The input of one run of the pipeline: where it is read from, how messages name it, and its
// SHA-256 (computed once: the daemon hashes a file to choose its output names and hands the digest on).
import Foundation
import SbiArchive
import SbiCore

public struct InputFile: Sendable {
    /// Where the file is read from (for the daemon: its place in STATE/processing/).
    public var path: String
    /// How errors name the file: the path as the user gave it, or the name it arrived with.
    public var displayName: String
    public var sha256: String

    public init(path: String, displayName: String, sha256: String) {
        self.path = path; self.displayName = displayName; self.sha256 = sha256
    }

    /// The file name outputs and reports record.
    public var fileName: String { URL(fileURLWithPath: path).lastPathComponent }

    /// Identifies `path`, hashing it unless the digest is already known.
    public static func identify(path: String, displayName: String? = nil, sha256: String? = nil) throws -> InputFile {
        let name = displayName ?? path
        do {
            return InputFile(path: path, displayName: name, sha256: try sha256 ?? Self.sha256(ofFile: path))
        } catch let e as SbiError { throw e.about(name) }
    }

    /// The same error about this file: the one place where input errors get the file's name.
    public func attribute(_ error: Error) -> Error {
        guard let e = error as? SbiError else { return error }
        return e.about(displayName)
    }

    /// Runs one stage on this file; an SbiError it throws names the file as the user knows it.
    public func stage<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch { throw attribute(error) }
    }

    /// SHA-256 of a file, read in 1 MiB pieces; only a regular file is read.
    public static func sha256(ofFile path: String) throws -> String {
        try FileDigest.sha256(ofFile: path, what: "the observation file")
    }
}
