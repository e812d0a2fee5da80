#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Files that hold keys or replicas: created new (never over an existing file), mode 0600.
public enum PrivateFile {
    public enum Failure: Error, Equatable, Sendable {
        case exists
        case system(String)
    }

    /// Creates `path` exclusively with mode 0600 and writes `contents`. On failure nothing is left behind.
    public static func create(at path: String, contents: [UInt8] = []) throws(Failure) {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST { throw .exists }
            throw .system(String(cString: strerror(errno)))
        }
        var written = 0
        while written < contents.count {
            let n = contents.withUnsafeBytes { write(fd, $0.baseAddress! + written, contents.count - written) }
            if n < 0 {
                let reason = String(cString: strerror(errno))
                close(fd)
                unlink(path)
                throw .system(reason)
            }
            written += n
        }
        if fsync(fd) != 0 || close(fd) != 0 {
            unlink(path)
            throw .system(String(cString: strerror(errno)))
        }
    }
}
