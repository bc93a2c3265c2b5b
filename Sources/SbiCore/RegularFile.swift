// The one way sbiwatch opens a file that comes from outside (observation files, model archives,
// models files, training sets, checkpoints): open(2) with O_NONBLOCK, so a FIFO cannot block the
// open, then fstat(2) on the descriptor, so a directory, FIFO, socket or device (a symlink to
// /dev/zero among them) is refused before a byte is read. Sizes are capped before allocating.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum RegularFile {
    /// An open regular file; `close()` it (or let `read` do everything).
    public struct Descriptor {
        public let fd: Int32
        public let size: Int
        public func close() { _ = Glibc.close(fd) }
    }

    /// Opens `path` for reading. `what` names the file in errors ("the observation file", ...).
    public static func open(_ path: String, what: String) throws -> Descriptor {
        let fd = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { throw openError(errno, path: path, what: what) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            _ = Glibc.close(fd)
            throw SbiError(.ioError, "\(what) cannot be examined: \(String(cString: strerror(e)))", subject: path)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            _ = Glibc.close(fd)
            throw SbiError(.badInput, "\(what) is \(kind(st.st_mode)), not a regular file",
                           hint: "give the path of a file; sbiwatch does not read directories, pipes or devices", subject: path)
        }
        // regular files never block; reads go back to the ordinary mode
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return Descriptor(fd: fd, size: Int(st.st_size))
    }

    /// The whole file, refused over `limit` bytes.
    public static func read(_ path: String, what: String, limit: Int) throws -> Data {
        let file = try open(path, what: what)
        defer { file.close() }
        guard file.size <= limit else {
            throw SbiError(.badInput, "\(what) has \(file.size) bytes, over the limit of \(limit)",
                           hint: "check that this is the right file", subject: path)
        }
        var data = Data(count: file.size)
        var filled = 0
        try data.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) in
            while filled < file.size {
                let n = Glibc.read(file.fd, raw.baseAddress! + filled, file.size - filled)
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { throw readError(errno, path: path, what: what) }
                if n == 0 { break }   // the file shrank while being read
                filled += n
            }
        }
        return filled == file.size ? data : data.prefix(filled)
    }

    /// Calls `body` with each piece of the file, in order, `chunk` bytes at most.
    public static func forEachChunk(_ path: String, what: String, chunk: Int = 1 << 20,
                                    _ body: (UnsafeRawBufferPointer) -> Void) throws {
        let file = try open(path, what: what)
        defer { file.close() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = Glibc.read(file.fd, buffer.baseAddress!, chunk)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw readError(errno, path: path, what: what) }
            if n == 0 { return }
            body(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
    }

    static func openError(_ e: Int32, path: String, what: String) -> SbiError {
        switch e {
        case ENOENT, ENOTDIR:
            return SbiError(.noInput, "\(what) does not exist", hint: "check the path", subject: path)
        case EACCES, EPERM:
            return SbiError(.noInput, "\(what) cannot be read (permission denied)",
                            hint: "give the user sbiwatch runs as read permission on it", subject: path)
        default:
            return SbiError(.noInput, "\(what) cannot be opened: \(String(cString: strerror(e)))", hint: "check the path", subject: path)
        }
    }

    static func readError(_ e: Int32, path: String, what: String) -> SbiError {
        SbiError(.ioError, "\(what) cannot be read: \(String(cString: strerror(e)))",
                 hint: "check the disk and the file; copy it elsewhere and try again", subject: path)
    }

    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a named pipe (FIFO)"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file"
        }
    }
}
