// SHA-256 of files that come from outside (observation files, training sets), read in pieces
// through the one regular-file opener.
import Crypto
import Foundation
import SbiCore

public enum FileDigest {
    /// Lower-case hexadecimal SHA-256 of the file at `path`; `what` names it in errors.
    public static func sha256(ofFile path: String, what: String) throws -> String {
        var hasher = SHA256()
        try RegularFile.forEachChunk(path, what: what) { hasher.update(bufferPointer: $0) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
