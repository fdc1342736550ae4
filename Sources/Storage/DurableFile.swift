import Glibc
import Wire

/// A small file replaced as a whole, durably: written to a temporary file, fsynced, renamed over
/// the old one, and the directory fsynced, so a crash leaves either the old content or the new,
/// never a mix. Framed and checksummed, so a corrupt file is an error, never a misread:
///
/// ```
/// offset size
///      0    4  magic "FLDF"
///      4    4  payload length (little-endian)
///      8    n  payload
///    8+n    4  CRC-32C of everything before
/// ```
///
/// For state that must survive a restart and is small and rarely written (a voter's lease
/// withholds); the Raft log has its own write-ahead log.
public enum DurableFile {
    static let magic: [UInt8] = Array("FLDF".utf8)

    /// Replaces `path`'s content with `payload`; returns once it is on disk.
    public static func write(_ payload: [UInt8], to path: String) throws(StorageError) {
        var bytes = magic
        let length = UInt32(truncatingIfNeeded: payload.count)
        precondition(Int(length) == payload.count, "a durable file holds at most 4 GiB, got \(payload.count) bytes")
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: length >> UInt32(shift))) }
        bytes += payload
        let crc = CRC32C.checksum(bytes)
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: crc >> UInt32(shift))) }
        try replace(path, with: bytes, mode: 0o600)
    }

    /// Replaces `path`'s content with `bytes` as they are, with the same guarantee (old or new,
    /// never a mix) but no framing: for files people and other programs read, such as the gossip
    /// keyring. A new file gets `mode`.
    public static func replace(_ path: String, with bytes: [UInt8], mode: mode_t) throws(StorageError) {
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let temporary = path + ".tmp"
        let fd = try FileIO.open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
        do {
            try FileIO.writeAll(fd, bytes, path: temporary)
            try FileIO.sync(fd, path: temporary)
        } catch {
            FileIO.close(fd)
            throw error
        }
        FileIO.close(fd)
        try FileIO.rename(temporary, path)
        try FileIO.syncDirectory(directory.isEmpty ? "/" : directory)
    }

    /// The payload of `path`, or nil when there is no file. A file that is not one this type
    /// wrote whole (wrong magic, length or checksum) is `corruptSnapshot`, naming the file.
    public static func read(_ path: String, payloadBytesMax: Int) throws(StorageError) -> [UInt8]? {
        guard access(path, F_OK) == 0 else {
            if errno == ENOENT { return nil }
            throw FileIO.error("access", path)
        }
        let bytes = try FileIO.readFile(path, bytesMax: payloadBytesMax + 12) { size in
            .corruptSnapshot(file: path, reason: "\(size) bytes, more than the \(payloadBytesMax + 12) it may hold")
        }
        guard bytes.count >= 12, Array(bytes[0..<4]) == magic else {
            throw .corruptSnapshot(file: path, reason: "not a durable file (magic or size)")
        }
        let length = (0..<4).reduce(0) { $0 | Int(bytes[4 + $1]) << (8 * $1) }
        guard length == bytes.count - 12 else {
            throw .corruptSnapshot(file: path, reason: "payload length \(length) does not match the file's \(bytes.count - 12)")
        }
        let stored = (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[bytes.count - 4 + $1]) << UInt32(8 * $1) }
        guard CRC32C.checksum(Array(bytes[0..<(bytes.count - 4)])) == stored else {
            throw .corruptSnapshot(file: path, reason: "checksum mismatch")
        }
        return Array(bytes[8..<(8 + length)])
    }
}
