// The whole gzip stream of an archive is checked before any entry is used, pinned or not (after
// the tar entries passed their limits, so a gzip bomb is refused before it is inflated twice):
// libarchive's gzip filter does not verify the trailer, so damaged weights inside a stream that
// still inflates would load. The stream is inflated once (libarchive, raw format) and its CRC-32
// and length compared with the trailer (RFC 1952). sbiwatch writes single-member streams.
import CArchive
import Foundation
import SbiCore

enum GzipIntegrity {
    /// Refuses a stream whose trailer does not match, or that inflates to more than `maxInflatedBytes`.
    static func verify(_ data: Data, source: String, maxInflatedBytes: Int) throws {
        func damaged(_ why: String) -> SbiError {
            SbiError(.badInput, "\(source) is damaged: \(why)",
                     hint: "restore the archive from where it was built, or rebuild it with the command in its model card")
        }
        guard data.count >= 18, data[data.startIndex] == 0x1f, data[data.startIndex + 1] == 0x8b else {
            throw damaged("it is not a gzip stream")
        }
        let trailer = data.suffix(8).map(UInt32.init)
        let expectedCRC = trailer[0] | trailer[1] << 8 | trailer[2] << 16 | trailer[3] << 24
        let expectedSize = trailer[4] | trailer[5] << 8 | trailer[6] << 16 | trailer[7] << 24
        let (crc, size) = try inflatedChecksum(data, limit: maxInflatedBytes, damaged)
        guard crc == expectedCRC else { throw damaged("the CRC-32 of its contents does not match the gzip trailer") }
        guard UInt32(truncatingIfNeeded: size) == expectedSize else { throw damaged("its inflated length does not match the gzip trailer") }
    }

    /// CRC-32 and length of the inflated stream; inflating stops past `limit` bytes.
    static func inflatedChecksum(_ data: Data, limit: Int, _ damaged: (String) -> SbiError) throws -> (UInt32, Int) {
        guard let a = archive_read_new() else { throw SbiError(.internalError, "libarchive: cannot allocate a reader") }
        defer { archive_read_free(a) }
        archive_read_support_filter_gzip(a)
        archive_read_support_format_raw(a)
        return try data.withUnsafeBytes { raw -> (UInt32, Int) in
            var entry: OpaquePointer?
            guard archive_read_open_memory(a, raw.baseAddress, raw.count) == ARCHIVE_OK,
                  archive_read_next_header(a, &entry) == ARCHIVE_OK else {
                throw damaged("its gzip stream cannot be read (\(String(cString: archive_error_string(a))))")
            }
            var crc = CRC32(), size = 0
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buffer.withUnsafeMutableBytes { archive_read_data(a, $0.baseAddress, $0.count) }
                guard n >= 0 else { throw damaged("its gzip stream is corrupt (\(String(cString: archive_error_string(a))))") }
                if n == 0 { break }
                buffer.withUnsafeBytes { crc.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                size += n
                guard size <= limit else { throw damaged("it inflates to more than its entries hold (data after the end of the archive)") }
            }
            return (crc.value, size)
        }
    }
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as gzip uses it.
struct CRC32 {
    private static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }
    private var state: UInt32 = 0xFFFF_FFFF

    /// bytes: any length.
    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var c = state
        Self.table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        state = c
    }

    var value: UInt32 { state ^ 0xFFFF_FFFF }
}
