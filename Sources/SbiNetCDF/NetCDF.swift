// NetCDF files through libnetcdf. netCDF-C is not thread-safe, so every call to it goes through
// `NetCDF.call`, which holds one process-wide lock and turns an error status into an SbiError
// that names the file and what was being done.
import CNetCDF
import Foundation
import SbiCore

public enum NetCDF {
    static let lock = NSLock()

    /// Largest variable sbiwatch reads, in values (refused before allocating).
    public static let maxValues = 50_000_000
    /// Most dimensions, variables or attributes (per variable, and global) a header may declare.
    public static let maxHeaderEntries: Int32 = 10_000
    /// Longest text attribute sbiwatch reads, in characters.
    public static let maxTextAttribute = 1 << 20

    /// The netCDF-C library's version, e.g. "4.9.0 of Jan  1 2023 $".
    public static var libraryVersion: String { String(cString: nc_inq_libvers()) }

    /// The library's message for a status code.
    public static func message(_ status: Int32) -> String { String(cString: nc_strerror(status)) }

    /// Runs one netCDF-C call under the lock; a non-zero status becomes an error.
    @discardableResult
    static func call(_ path: String, _ what: String, code: SbiError.Code = .badInput, hint: String? = nil,
                     _ body: () -> Int32) throws -> Int32 {
        lock.lock()
        silenceHDF5OnThisThread()
        let status = body()
        lock.unlock()
        guard status == NC_NOERR else {
            throw SbiError(code, "\(what): \(message(status))", hint: hint, subject: path)
        }
        return status
    }

    static func locked<T>(_ body: () -> T) -> T {
        lock.lock(); defer { lock.unlock() }
        silenceHDF5OnThisThread()
        return body()
    }

    /// HDF5 prints its error stack to stderr unless told otherwise, and that setting is per thread:
    /// netCDF turns it off only on the thread that first used it. sbiwatch reports errors itself,
    /// so every thread that calls netCDF turns the printing off (H5Eset_auto2, found at run time in
    /// the HDF5 library netCDF loads).
    private static let setAuto: (@convention(c) (Int64, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int32)? = {
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "H5Eset_auto2") else { return nil }
        return unsafeBitCast(sym, to: (@convention(c) (Int64, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int32).self)
    }()

    private static func silenceHDF5OnThisThread() { _ = setAuto?(0, nil, nil) }  // 0 = H5E_DEFAULT
}

/// The external type of a variable.
public enum NCType: Sendable, Equatable {
    case byte, char, short, int, float, double, ubyte, ushort, uint, int64, uint64, string, other(Int32)

    init(_ t: nc_type) {
        switch t {
        case NC_BYTE: self = .byte
        case NC_CHAR: self = .char
        case NC_SHORT: self = .short
        case NC_INT: self = .int
        case NC_FLOAT: self = .float
        case NC_DOUBLE: self = .double
        case NC_UBYTE: self = .ubyte
        case NC_USHORT: self = .ushort
        case NC_UINT: self = .uint
        case NC_INT64: self = .int64
        case NC_UINT64: self = .uint64
        case NC_STRING: self = .string
        default: self = .other(t)
        }
    }

    /// netCDF's default fill value of the type (what unwritten values read as).
    public var defaultFill: Double? {
        switch self {
        case .byte: return -127
        case .short: return Double(NC_FILL_SHORT)
        case .int: return Double(NC_FILL_INT)
        case .float: return Double(Float(NC_FILL_FLOAT))
        case .double: return NC_FILL_DOUBLE
        case .ubyte: return Double(NC_FILL_UBYTE)
        case .ushort: return Double(NC_FILL_USHORT)
        case .uint: return Double(NC_FILL_UINT)
        case .int64: return -9223372036854775806
        case .uint64: return 18446744073709551614
        default: return nil
        }
    }

    public var isNumeric: Bool {
        switch self { case .char, .string, .other: return false; default: return true }
    }
}

public struct NCDimension: Sendable, Equatable {
    public var id: Int32
    public var name: String
    public var length: Int
}

public struct NCVariable: Sendable {
    public var id: Int32
    public var name: String
    public var type: NCType
    public var dimensions: [NCDimension]
    public var attributeNames: [String]
    public var shape: [Int] { dimensions.map(\.length) }
    /// Values in the variable; Int.max when the product of the dimension lengths overflows.
    public var count: Int {
        var n = 1
        for d in dimensions {
            let (p, overflow) = n.multipliedReportingOverflow(by: d.length)
            if overflow { return Int.max }
            n = p
        }
        return n
    }
}

/// One buffer for the names netCDF-C copies out. netCDF-C 4.9.0 copies as many bytes as the header
/// says a name has (strncpy), whatever buffer it is given, and normalises names first (Unicode
/// NFC can lengthen them); fuzzing found classic headers that overflowed a 257-byte buffer. So the
/// buffer holds four times the file, at least 1 MB and at most 64 MB, and is followed by an
/// inaccessible guard page: a longer copy faults at once (in the test-read child, which then
/// refuses the file) instead of corrupting memory. A name over NC_MAX_NAME is refused.
final class NameBuffer {
    private let base: UnsafeMutableRawPointer
    private let usable: Int
    private let mapped: Int

    init(capacity fileSize: Int) throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let room = min(max(4 * max(fileSize, 0), 1 << 20), 64 << 20) + Int(NC_MAX_NAME) + 1
        usable = (room + page - 1) / page * page
        mapped = usable + page
        guard let p = mmap(nil, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            throw SbiError(.ioError, "cannot map \(mapped) bytes for reading a NetCDF header", hint: "free some memory and try again")
        }
        base = p
        _ = mprotect(base + usable, page, PROT_NONE)
    }

    deinit { munmap(base, mapped) }

    /// Runs `call` with the buffer and returns the name it wrote. The start is cleared each time
    /// and the last usable byte stays 0, so the name read back always ends inside the buffer.
    func read(_ reader: NetCDFReader, _ what: String, _ call: (UnsafeMutablePointer<CChar>) -> Int32) throws -> String {
        let chars = base.bindMemory(to: CChar.self, capacity: usable)
        chars.update(repeating: 0, count: Int(NC_MAX_NAME) + 1)
        chars[usable - 1] = 0
        try NetCDF.call(reader.path, "reading \(what)") { call(chars) }
        let name = String(cString: chars)
        guard name.utf8.count <= Int(NC_MAX_NAME) else {
            throw reader.damagedHeader("the name of \(what) is \(name.utf8.count) bytes long; names hold at most \(NC_MAX_NAME)")
        }
        return name
    }
}

/// A NetCDF file open for reading (classic, 64-bit offset or NetCDF-4). Close it with `close()`.
public final class NetCDFReader {
    public let path: String
    let ncid: Int32
    private var open = true
    public private(set) var dimensions: [NCDimension] = []
    public private(set) var variables: [NCVariable] = []
    public private(set) var globalAttributeNames: [String] = []

    public init(path: String) throws {
        self.path = path
        // a directory, FIFO or device is refused before netCDF opens it (a FIFO would block the open)
        let file = try RegularFile.open(path, what: "the file")
        let size = file.size
        file.close()
        var id: Int32 = -1
        let status = NetCDF.locked { nc_open(path, NC_NOWRITE, &id) }
        guard status == NC_NOERR else {
            let why: String
            if size == 0 { why = "empty" }
            else if status == NC_ENOTNC { why = "not a NetCDF file" }
            else if status == NC_EHDFERR || status == NC_ENOTNC4 { why = "an HDF5 file that is not NetCDF-4, or a damaged one (\(NetCDF.message(status)))" }
            else { why = "cannot be read as NetCDF; it may be truncated or damaged (\(NetCDF.message(status)))" }
            throw SbiError(.badInput, why, hint: "give a complete NetCDF file (classic, 64-bit offset or NetCDF-4); check it with `ncdump -h`",
                           subject: path)
        }
        ncid = id
        do { try load(fileSize: size) } catch { close(); throw error }
    }

    deinit { close() }

    public func close() {
        if open { NetCDF.locked { _ = nc_close(ncid) }; open = false }
    }

    /// The header: dimensions, variables, attribute names. netCDF-C copies a name as long as the
    /// header says it is, and as many ids as it declares, whatever buffer it is given (a damaged
    /// classic header found by fuzzing overflowed a 257-byte name buffer), so every count is asked
    /// for first and checked, and names go into one buffer as large as the file itself.
    private func load(fileSize: Int) throws {
        var ndims: Int32 = 0, nvars: Int32 = 0, natts: Int32 = 0, unlimited: Int32 = 0
        try NetCDF.call(path, "reading the header") { nc_inq(ncid, &ndims, &nvars, &natts, &unlimited) }
        // a damaged header of a few bytes can declare millions of entries (found by fuzzing)
        var listed: Int32 = 0
        try NetCDF.call(path, "listing dimensions") { nc_inq_dimids(ncid, &listed, nil, 0) }
        for (count, what) in [(ndims, "dimensions"), (listed, "dimensions"), (nvars, "variables"), (natts, "global attributes")]
        where !(0...NetCDF.maxHeaderEntries).contains(count) {
            throw damagedHeader("the header declares \(count) \(what); sbiwatch reads at most \(NetCDF.maxHeaderEntries)")
        }
        let names = try NameBuffer(capacity: fileSize)
        // dimension ids are not always 0..<ndims in NetCDF-4 groups; ask for them
        var dimids = [Int32](repeating: 0, count: Int(max(listed, 1)))
        try NetCDF.call(path, "listing dimensions") { nc_inq_dimids(ncid, &listed, &dimids, 0) }
        for d in dimids.prefix(Int(listed)) {
            var len = 0
            let name = try names.read(self, "dimension \(d)") { nc_inq_dim(ncid, d, $0, &len) }
            dimensions.append(NCDimension(id: d, name: name, length: len))
        }
        for v in 0..<nvars { variables.append(try readVariable(v, names)) }
        globalAttributeNames = try (0..<natts).map { i in try names.read(self, "attribute \(i)") { nc_inq_attname(ncid, NC_GLOBAL, i, $0) } }
    }

    private func readVariable(_ v: Int32, _ names: NameBuffer) throws -> NCVariable {
        var vdims: Int32 = 0, vatts: Int32 = 0, type: nc_type = 0
        try NetCDF.call(path, "reading variable \(v)") { nc_inq_varndims(ncid, v, &vdims) }
        try NetCDF.call(path, "reading variable \(v)") { nc_inq_varnatts(ncid, v, &vatts) }
        guard (0...Int32(NC_MAX_VAR_DIMS)).contains(vdims), (0...NetCDF.maxHeaderEntries).contains(vatts) else {
            throw damagedHeader("variable \(v) declares \(vdims) dimensions and \(vatts) attributes; sbiwatch reads at most \(NC_MAX_VAR_DIMS) and \(NetCDF.maxHeaderEntries)")
        }
        var ids = [Int32](repeating: 0, count: Int(max(vdims, 1)))
        let name = try names.read(self, "variable \(v)") { nc_inq_var(ncid, v, $0, &type, &vdims, &ids, &vatts) }
        let dims = try ids.prefix(Int(vdims)).map { id -> NCDimension in
            guard let d = dimensions.first(where: { $0.id == id }) else {
                throw SbiError(.badInput, "variable \(name) uses an unknown dimension", subject: path)
            }
            return d
        }
        let attNames = try (0..<vatts).map { i in try names.read(self, "attribute \(i) of \(name)") { nc_inq_attname(ncid, v, i, $0) } }
        return NCVariable(id: v, name: name, type: NCType(type), dimensions: dims, attributeNames: attNames)
    }

    func damagedHeader(_ what: String) -> SbiError {
        SbiError(.badInput, what, hint: "the file is damaged, or not an observation file", subject: path)
    }

    public func variable(named name: String) -> NCVariable? { variables.first { $0.name == name } }

    /// A text attribute of a variable (nil: the global attributes), or nil when absent or not text.
    public func textAttribute(_ name: String, of variable: NCVariable? = nil) throws -> String? {
        let varid = variable?.id ?? NC_GLOBAL
        var type: nc_type = 0, len = 0
        guard NetCDF.locked({ nc_inq_att(ncid, varid, name, &type, &len) }) == NC_NOERR else { return nil }
        guard len <= NetCDF.maxTextAttribute else {
            throw SbiError(.badInput, "attribute \(name) holds \(len) characters, over the limit of \(NetCDF.maxTextAttribute)",
                           hint: "attributes hold short texts; check the file", subject: path)
        }
        if type == NC_CHAR {
            var buf = [CChar](repeating: 0, count: len + 1)
            try NetCDF.call(path, "reading attribute \(name)") { nc_get_att_text(ncid, varid, name, &buf) }
            return String(cString: buf)
        }
        if type == NC_STRING && len == 1 {
            var p: UnsafeMutablePointer<CChar>? = nil
            try NetCDF.call(path, "reading attribute \(name)") { nc_get_att_string(ncid, varid, name, &p) }
            defer { NetCDF.locked { _ = nc_free_string(1, &p) } }
            return p.map { String(cString: $0) }
        }
        return nil
    }

    /// A numeric attribute as doubles, or nil when absent or not numeric.
    public func numericAttribute(_ name: String, of variable: NCVariable? = nil) throws -> [Double]? {
        let varid = variable?.id ?? NC_GLOBAL
        var type: nc_type = 0, len = 0
        guard NetCDF.locked({ nc_inq_att(ncid, varid, name, &type, &len) }) == NC_NOERR else { return nil }
        guard NCType(type).isNumeric, len > 0, len < 1_000_000 else { return nil }
        var out = [Double](repeating: 0, count: len)
        try NetCDF.call(path, "reading attribute \(name)") { nc_get_att_double(ncid, varid, name, &out) }
        return out
    }

    /// All values of a numeric variable as doubles (row-major), refused above `NetCDF.maxValues`.
    public func doubles(_ variable: NCVariable) throws -> [Double] {
        guard variable.type.isNumeric else {
            throw SbiError(.badInput, "variable \(variable.name) is not numeric", hint: "store it as float or double", subject: path)
        }
        let n = variable.count
        guard n <= NetCDF.maxValues else {
            throw SbiError(.badInput, "variable \(variable.name) has \(n) values, over the limit of \(NetCDF.maxValues)", 
                           hint: "split the file; sbiwatch refuses absurd sizes before allocating", subject: path)
        }
        var out = [Double](repeating: 0, count: n)
        if n > 0 {
            try NetCDF.call(path, "reading variable \(variable.name)") { nc_get_var_double(ncid, variable.id, &out) }
        }
        return out
    }
}

/// Writes a NetCDF-4 (classic model) or classic file. Define, then `endDefinitions()`, then write
/// values, then `close()`. Write to a temporary path and rename for atomic outputs.
public final class NetCDFWriter {
    public let path: String
    let ncid: Int32
    private var open = true

    public enum Format { case netcdf4Classic, classic, offset64 }

    public init(path: String, format: Format = .netcdf4Classic) throws {
        self.path = path
        var id: Int32 = -1
        let mode: Int32
        switch format {
        case .netcdf4Classic: mode = NC_NETCDF4 | NC_CLASSIC_MODEL | NC_CLOBBER
        case .classic: mode = NC_CLOBBER
        case .offset64: mode = NC_64BIT_OFFSET | NC_CLOBBER
        }
        try NetCDF.call(path, "creating the file", code: .cannotCreate, hint: "check that the folder exists and is writable") {
            nc_create(path, mode, &id)
        }
        ncid = id
    }

    deinit { if open { NetCDF.locked { _ = nc_close(ncid) } } }

    public func close() throws {
        guard open else { return }
        open = false
        try NetCDF.call(path, "closing", code: .ioError) { nc_close(ncid) }
    }

    @discardableResult
    public func defineDimension(_ name: String, length: Int) throws -> Int32 {
        var id: Int32 = -1
        try NetCDF.call(path, "defining dimension \(name)", code: .internalError) { nc_def_dim(ncid, name, length, &id) }
        return id
    }

    @discardableResult
    public func defineVariable(_ name: String, dimensions: [Int32], type: NCType = .double) throws -> Int32 {
        var id: Int32 = -1
        let t: nc_type
        switch type {
        case .float: t = NC_FLOAT
        case .int: t = NC_INT
        default: t = NC_DOUBLE
        }
        try NetCDF.call(path, "defining variable \(name)", code: .internalError) {
            nc_def_var(ncid, name, t, Int32(dimensions.count), dimensions, &id)
        }
        return id
    }

    /// Text attribute on a variable (nil: global).
    public func setAttribute(_ name: String, _ value: String, variable: Int32? = nil) throws {
        try NetCDF.call(path, "writing attribute \(name)", code: .internalError) {
            nc_put_att_text(ncid, variable ?? NC_GLOBAL, name, value.utf8.count, value)
        }
    }

    /// Numeric (double) attribute on a variable (nil: global).
    public func setAttribute(_ name: String, _ values: [Double], variable: Int32? = nil) throws {
        try NetCDF.call(path, "writing attribute \(name)", code: .internalError) {
            nc_put_att_double(ncid, variable ?? NC_GLOBAL, name, NC_DOUBLE, values.count, values)
        }
    }

    public func endDefinitions() throws {
        try NetCDF.call(path, "ending definitions", code: .ioError) { nc_enddef(ncid) }
    }

    public func write(_ values: [Double], variable: Int32) throws {
        try NetCDF.call(path, "writing values", code: .ioError) { nc_put_var_double(ncid, variable, values) }
    }
}
