#if canImport(Glibc)
import Glibc
#endif

extension SystemdManager {
    /// The path this process writes `unit`'s file to.
    public nonisolated func unitFileWritePath(_ unit: UnitName) -> String {
        configuration.unitFileDirectory.writePath + "/" + unit.rawValue
    }

    /// Unit files larger than this are refused: systemd itself refuses unit files over 4 MiB.
    public static let unitFileBytesMax = 4 * 1024 * 1024

    /// Writes `unit`'s file into the unit-file directory, atomically (temporary file, rename),
    /// and says whether its content changed. A `.changed` file needs `reload()` before systemd
    /// uses it; `.unchanged` needs nothing (fleet reloaded on hash changes for the same reason).
    /// A `.created` file of a unit systemd never loaded needs no reload either: systemd reads it
    /// on first reference. Runs on the caller's executor: file IO never blocks the bus thread.
    public nonisolated func writeUnitFile(_ unit: UnitName, contents: String) throws -> UnitFileWrite {
        let directory = configuration.unitFileDirectory.writePath
        let path = unitFileWritePath(unit)
        let bytes = Array(contents.utf8)
        guard bytes.count <= SystemdManager.unitFileBytesMax else {
            throw SystemdBusError.unitFileIO(path: path, errno: EFBIG)
        }
        let existing = try readFileIfPresent(path)
        if existing == bytes { return .unchanged }
        try makeDirectories(directory)
        let temporary = directory + "/.\(unit.rawValue).\(getpid()).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SystemdBusError.unitFileIO(path: temporary, errno: errno) }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 {
                let code = errno
                Glibc.close(fd)
                unlink(temporary)
                throw SystemdBusError.unitFileIO(path: temporary, errno: code)
            }
            written += count
        }
        Glibc.close(fd)
        if rename(temporary, path) != 0 {
            let code = errno
            unlink(temporary)
            throw SystemdBusError.unitFileIO(path: path, errno: code)
        }
        return existing == nil ? .created : .changed
    }

    /// Removes `unit`'s file; true if there was one. Disable and stop the unit first, and
    /// `reload()` after.
    @discardableResult
    public nonisolated func removeUnitFile(_ unit: UnitName) throws -> Bool {
        let path = unitFileWritePath(unit)
        if unlink(path) == 0 { return true }
        if errno == ENOENT { return false }
        throw SystemdBusError.unitFileIO(path: path, errno: errno)
    }

    private nonisolated func readFileIfPresent(_ path: String) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw SystemdBusError.unitFileIO(path: path, errno: errno)
        }
        defer { Glibc.close(fd) }
        var content: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while content.count <= SystemdManager.unitFileBytesMax {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 { throw SystemdBusError.unitFileIO(path: path, errno: errno) }
            if count == 0 { break }
            content.append(contentsOf: buffer[..<count])
        }
        return content
    }

    private nonisolated func makeDirectories(_ path: String) throws {
        var prefix = ""
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw SystemdBusError.unitFileIO(path: prefix, errno: errno)
            }
        }
    }
}
