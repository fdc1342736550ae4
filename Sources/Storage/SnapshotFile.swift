import Raft
import Wire

/// A snapshot on disk, one file per snapshot, named by index and term so that the log's snapshot
/// marker identifies its file:
///
/// ```
/// snap-<index, 16 hex digits>-<term, 16 hex digits>.snap
///
/// offset size
///      0    4  magic "FLSN"
///      4    1  version (1)
///      5    3  zero
///      8    …  metadata (Wire, length-prefixed)
///      …    8  data length
///      …    n  data
///      …    4  CRC-32C of everything before
/// ```
enum SnapshotFile {
    static let magic: [UInt8] = Array("FLSN".utf8)
    static let version: UInt8 = 1
    static let overheadBytesMax = 64 * 1024

    static func name(index: UInt64, term: UInt64) -> String {
        "snap-\(hex16(index))-\(hex16(term)).snap"
    }

    static func parseName(_ name: String) -> (index: UInt64, term: UInt64)? {
        guard name.hasPrefix("snap-"), name.hasSuffix(".snap") else { return nil }
        let parts = name.dropFirst(5).dropLast(5).split(separator: "-")
        guard parts.count == 2, parts.allSatisfy({ $0.count == 16 }),
              let index = UInt64(parts[0], radix: 16), let term = UInt64(parts[1], radix: 16) else { return nil }
        return (index, term)
    }

    static func encode(_ snapshot: Snapshot) -> [UInt8] {
        var writer = ByteWriter(capacity: snapshot.data.count + 256)
        writer.write(raw: magic)
        writer.write(version)
        writer.write(raw: [0, 0, 0])
        writer.write(lengthPrefixed: snapshot.metadata.encodedBody)
        writer.write(count: snapshot.data.count)
        writer.write(raw: snapshot.data)
        writer.write(CRC32C.checksum(writer.bytes))
        return writer.bytes
    }

    static func decode(_ bytes: [UInt8], file: String) throws(StorageError) -> Snapshot {
        func corrupt(_ reason: String) -> StorageError { .corruptSnapshot(file: file, reason: reason) }
        guard bytes.count >= 12 else { throw corrupt("\(bytes.count) bytes") }
        let stored = bytes.withUnsafeBytes { RecordFormat.readUInt32($0, bytes.count - 4) }
        guard stored == CRC32C.checksum(bytes[0..<bytes.count - 4]) else { throw corrupt("checksum mismatch") }
        var reader = ByteReader(Array(bytes[0..<bytes.count - 4]))
        do {
            guard try reader.readRaw(4, "magic") == magic else { throw corrupt("bad magic") }
            let fileVersion = try reader.readUInt8("version")
            guard fileVersion == version else { throw corrupt("unsupported version \(fileVersion)") }
            _ = try reader.readRaw(3, "reserved")
            let metadata = try SnapshotMetadata.decode(body: try reader.readLengthPrefixed("metadata"))
            let count = try reader.readCount("data length")
            let data = try reader.readRaw(min(count, reader.remainingBytes + 1), "data")
            try reader.expectEnd()
            return Snapshot(metadata: metadata, data: data)
        } catch let error as StorageError {
            throw error
        } catch {
            throw corrupt("\(error)")
        }
    }
}

func hex16(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}
