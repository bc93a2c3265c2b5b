// Reading and writing gzip-compressed tar archives with libarchive, entirely in memory:
// reading never writes anything to disk, and hostile entries are refused.
import CArchive
import Foundation
import SbiCore

enum TarIO {
    static var libraryVersion: String { String(cString: archive_version_string()) }

    /// Entries are refused above this size (weights of the large config are ~1.5 MB).
    static let maxEntryBytes = 256 << 20

    /// A gzip'd ustar archive of `files` in the given order, with fixed owner, mode and time
    /// (so the same content gives the same bytes).
    static func write(_ files: [(name: String, data: Data)]) throws -> Data {
        guard let a = archive_write_new() else { throw SbiError(.internalError, "libarchive: cannot allocate a writer") }
        defer { archive_write_free(a) }
        func check(_ r: Int32, _ what: String) throws {
            if r != ARCHIVE_OK {
                throw SbiError(.internalError, "libarchive: \(what): \(String(cString: archive_error_string(a)))")
            }
        }
        try check(archive_write_set_format_ustar(a), "ustar format")
        try check(archive_write_add_filter_gzip(a), "gzip filter")
        // no timestamp in the gzip header: reproducible bytes
        _ = archive_write_set_filter_option(a, "gzip", "timestamp", nil)
        _ = archive_write_set_bytes_in_last_block(a, 1)
        let capacity = files.reduce(0) { $0 + $1.data.count } * 2 + 65536
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        var used = 0
        try check(archive_write_open_memory(a, buffer, capacity, &used), "open memory")
        for f in files {
            guard let e = archive_entry_new() else { throw SbiError(.internalError, "libarchive: cannot allocate an entry") }
            defer { archive_entry_free(e) }
            archive_entry_set_pathname(e, f.name)
            archive_entry_set_size(e, la_int64_t(f.data.count))
            archive_entry_set_filetype(e, SBI_AE_IFREG)
            archive_entry_set_perm(e, 0o644)
            archive_entry_set_mtime(e, 0, 0)
            archive_entry_set_uname(e, "sbiwatch")
            archive_entry_set_gname(e, "sbiwatch")
            try check(archive_write_header(a, e), "header of \(f.name)")
            let written = f.data.withUnsafeBytes { archive_write_data(a, $0.baseAddress, f.data.count) }
            guard written == f.data.count else { throw SbiError(.internalError, "libarchive: short write of \(f.name)") }
        }
        try check(archive_write_close(a), "close")
        return Data(bytes: buffer, count: used)
    }

    /// Every regular file of a gzip'd tar, by name. Refuses (with `source` named in the error):
    /// absolute or ".." names, links, devices, directories and other non-files, entries over the
    /// size limit, and duplicate names.
    static func read(_ archiveData: Data, source: String, allowed: Set<String>) throws -> [String: Data] {
        let files = try readEntries(archiveData, source: source, allowed: allowed)
        // the entries passed the limits, so inflating the whole stream once more is bounded
        let inflated = files.values.reduce(0) { $0 + $1.count } + 512 * (2 * files.count + 20)
        try GzipIntegrity.verify(archiveData, source: source, maxInflatedBytes: inflated + (1 << 20))
        return files
    }

    private static func readEntries(_ archiveData: Data, source: String, allowed: Set<String>) throws -> [String: Data] {
        guard let a = archive_read_new() else { throw SbiError(.internalError, "libarchive: cannot allocate a reader") }
        defer { archive_read_free(a) }
        archive_read_support_filter_gzip(a)
        archive_read_support_format_tar(a)
        func refuse(_ what: String) -> SbiError {
            SbiError(.badInput, "\(source): \(what)",
                     hint: "this is not a model archive written by sbiwatch; do not use it, and rebuild the model with `sbiwatch train`")
        }
        return try archiveData.withUnsafeBytes { raw -> [String: Data] in
            guard archive_read_open_memory(a, raw.baseAddress, raw.count) == ARCHIVE_OK else {
                throw refuse("is not a gzip-compressed tar archive (\(String(cString: archive_error_string(a))))")
            }
            var files: [String: Data] = [:]
            var entry: OpaquePointer?
            while true {
                let r = archive_read_next_header(a, &entry)
                if r == ARCHIVE_EOF { break }
                guard r == ARCHIVE_OK || r == ARCHIVE_WARN, let e = entry else {
                    throw refuse("is damaged or truncated (\(String(cString: archive_error_string(a))))")
                }
                guard let cname = archive_entry_pathname(e) else { throw refuse("has an entry without a name") }
                let name = String(cString: cname)
                let components = name.split(separator: "/", omittingEmptySubsequences: false)
                if name.hasPrefix("/") || components.contains("..") {
                    throw refuse("has an entry named '\(name)' that points outside the archive")
                }
                let type = archive_entry_filetype(e)
                if type != SBI_AE_IFREG || archive_entry_hardlink(e) != nil || archive_entry_symlink(e) != nil {
                    throw refuse("has an entry '\(name)' that is not a regular file (a link, device or directory)")
                }
                let size = archive_entry_size(e)
                guard size >= 0, size <= la_int64_t(maxEntryBytes) else {
                    throw refuse("has an entry '\(name)' of \(size) bytes, over the \(maxEntryBytes >> 20) MB limit")
                }
                guard files[name] == nil else { throw refuse("holds '\(name)' twice") }
                guard allowed.contains(name) else {
                    throw refuse("holds an unexpected entry '\(name)' (a model archive holds \(allowed.sorted().joined(separator: ", ")))")
                }
                var data = Data(count: Int(size))
                let n = data.withUnsafeMutableBytes { archive_read_data(a, $0.baseAddress, Int(size)) }
                guard n == Int(size) else { throw refuse("is truncated inside '\(name)'") }
                files[name] = data
            }
            return files
        }
    }
}
