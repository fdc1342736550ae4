// Linux only for now (like SystemdBus): the calls are qualified with Glibc to keep them apart
// from the wrappers' own names.
import Glibc

/// Thin wrappers over the POSIX calls the log needs, turning errno into `StorageError.io`.
/// Every write loops over short writes and EINTR; nothing here decides anything.
enum FileIO {
    static func error(_ operation: String, _ path: String) -> StorageError {
        .io(operation: operation, path: path, errno: errno)
    }

    static func open(_ path: String, flags: Int32, mode: mode_t = 0o644) throws(StorageError) -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if errno != EINTR { throw error("open", path) }
        }
    }

    static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(StorageError) {
        var failure: StorageError?
        bytes.withUnsafeBytes { raw in
            var written = 0
            while written < raw.count {
                let result = Glibc.write(fd, raw.baseAddress! + written, raw.count - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    failure = error("write", path)
                    return
                }
                written += result
            }
        }
        if let failure { throw failure }
    }

    /// `fdatasync` flushes the data and the metadata needed to read it back (the file size), which
    /// is all an append needs; it skips the timestamps `fsync` would also write.
    static func dataSync(_ fd: Int32, path: String) throws(StorageError) {
        guard fdatasync(fd) == 0 else { throw error("fdatasync", path) }
    }

    static func sync(_ fd: Int32, path: String) throws(StorageError) {
        guard fsync(fd) == 0 else { throw error("fsync", path) }
    }

    /// Makes creations, renames and removals of the directory's entries durable.
    static func syncDirectory(_ path: String) throws(StorageError) {
        let fd = try open(path, flags: O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try sync(fd, path: path)
    }

    static func truncate(_ fd: Int32, to length: Int, path: String) throws(StorageError) {
        guard ftruncate(fd, off_t(length)) == 0 else { throw error("ftruncate", path) }
    }

    static func rename(_ from: String, _ to: String) throws(StorageError) {
        guard Glibc.rename(from, to) == 0 else { throw error("rename", from) }
    }

    static func remove(_ path: String) throws(StorageError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw error("unlink", path) }
    }

    static func fileSize(_ fd: Int32, path: String) throws(StorageError) -> Int {
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw error("fstat", path) }
        return Int(status.st_size)
    }

    /// Reads a whole file, refusing (before allocating) one larger than `bytesMax`.
    static func readFile(_ path: String, bytesMax: Int, tooLarge: (Int) -> StorageError) throws(StorageError) -> [UInt8] {
        let fd = try open(path, flags: O_RDONLY)
        defer { close(fd) }
        let size = try fileSize(fd, path: path)
        guard size <= bytesMax else { throw tooLarge(size) }
        var bytes = [UInt8](repeating: 0, count: size)
        var failure: StorageError?
        var total = 0
        bytes.withUnsafeMutableBytes { raw in
            while total < size {
                let result = read(fd, raw.baseAddress! + total, size - total)
                if result < 0 {
                    if errno == EINTR { continue }
                    failure = error("read", path)
                    return
                }
                if result == 0 { break }
                total += result
            }
        }
        if let failure { throw failure }
        return Array(bytes[0..<total])
    }

    static func listDirectory(_ path: String) throws(StorageError) -> [String] {
        guard let directory = opendir(path) else { throw error("opendir", path) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: entry.pointee.d_name)) {
                    String(cString: $0)
                }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Creates `path` if missing and makes its entry in the parent durable.
    static func makeDirectory(_ path: String) throws(StorageError) {
        if mkdir(path, 0o755) == 0 {
            let parent = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
            try syncDirectory(parent.isEmpty ? (path.hasPrefix("/") ? "/" : ".") : parent)
        } else if errno != EEXIST {
            throw error("mkdir", path)
        }
    }

    /// How long `lock` waits for a lock held elsewhere before it reports `directoryLocked`.
    ///
    /// A flock belongs to the open file description, and `fork` (inside `posix_spawn` too) copies
    /// every descriptor of the process into the child until it calls `exec`, O_CLOEXEC or not.
    /// So when any thread spawns a process just as the log's owner closes it, the lock outlives
    /// the close for that short window, and an immediate reopen would be refused. Seen in the
    /// full test run, where many suites spawn processes in one test process; a restarted daemon
    /// can meet the same with an old process still exiting. A real second owner holds the lock
    /// far longer than this wait.
    static let lockWaitMilliseconds = 2_000

    /// An exclusive advisory lock held as long as the returned descriptor is open.
    static func lock(_ path: String, directory: String) throws(StorageError) -> Int32 {
        let fd = try open(path, flags: O_RDWR | O_CREAT)
        var waitedMilliseconds = 0
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            if code == EWOULDBLOCK && waitedMilliseconds < lockWaitMilliseconds {
                usleep(10_000)
                waitedMilliseconds += 10
                continue
            }
            close(fd)
            if code == EWOULDBLOCK { throw .directoryLocked(path: directory) }
            throw .io(operation: "flock", path: path, errno: code)
        }
        return fd
    }
}
