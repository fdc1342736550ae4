import Raft
import Wire

/// One record of the write-ahead log.
///
/// On disk:
/// ```
/// offset size
///      0    4  length n of kind + body, little-endian (1...recordBytesMax)
///      4    4  CRC-32C of the length bytes, the kind byte and the body
///      8    1  kind (RecordKind) in the low bits; 0x40 marks the first record of a batch,
///              0x80 the last
///      9  n-1  body (Wire encodings of the Raft values)
/// ```
/// The checksum covers the length so that a flipped length bit is caught instead of steering the
/// reader into the middle of another record. The batch-start bit tells a torn tail from damage in
/// the middle (see `SegmentScan`). The batch-end bit makes a batch atomic on recovery:
/// a crash can leave a prefix of a batch's records on disk, and replaying only part of a batch
/// could persist entries of a new term without the hard state of that term (which the core
/// rejects as `termBelowLog`) or a commit index beyond the entries written.
enum Record: Equatable, Sendable {
    case hardState(HardState)
    /// A contiguous run of entries starting exactly at the log's next index.
    case entries([Entry])
    /// Drops every entry with index ≥ `fromIndex` (a follower replacing conflicting entries, §5.3).
    case truncate(fromIndex: UInt64)
    /// A snapshot now stands for the log through `metadata.index`; its data lives in a snapshot file.
    case snapshot(SnapshotMetadata, SnapshotMode)
}

/// How a snapshot marker changes the log on replay.
enum SnapshotMode: UInt8, Sendable {
    /// Taken locally (`RaftNode.createSnapshot`): entries after the snapshot stay.
    case compacted = 0
    /// Received from the leader (`Ready.snapshot`): it replaces the whole stored log (Ready, step 1).
    case installed = 1
}

enum RecordKind: UInt8 {
    case hardState = 1, entries = 2, truncate = 3, snapshot = 4
    static let batchStartFlag: UInt8 = 0x40
    static let batchEndFlag: UInt8 = 0x80
}

enum RecordFormat {
    static let headerBytes = 9

    /// Appends one record to `writer`.
    static func append(_ record: Record, startsBatch: Bool, endsBatch: Bool, to writer: inout ByteWriter) {
        let start = writer.bytes.count
        writer.write(UInt32(0))  // length, patched below
        writer.write(UInt32(0))  // checksum, patched below
        let kind: RecordKind
        var body = ByteWriter()
        switch record {
        case .hardState(let state):
            kind = .hardState
            state.encode(into: &body)
        case .entries(let entries):
            kind = .entries
            body.write(entries: entries)
        case .truncate(let index):
            kind = .truncate
            body.write(index)
        case .snapshot(let metadata, let mode):
            kind = .snapshot
            body.write(mode.rawValue)
            metadata.encode(into: &body)
        }
        writer.write(kind.rawValue | (startsBatch ? RecordKind.batchStartFlag : 0) | (endsBatch ? RecordKind.batchEndFlag : 0))
        writer.write(raw: body.bytes)
        let length = UInt32(1 + body.bytes.count)
        writer.patch(length, at: start)
        let checksum = writer.bytes.withUnsafeBytes { raw in
            let lengthCRC = CRC32C.update(0, buffer: UnsafeRawBufferPointer(rebasing: raw[start..<start + 4]))
            return CRC32C.update(lengthCRC, buffer: UnsafeRawBufferPointer(rebasing: raw[start + 8..<raw.count]))
        }
        writer.patch(checksum, at: start + 4)
    }

    /// The encoded size of an entries record holding `entries`.
    static func entriesRecordBytes(_ entries: some Collection<Entry>) -> Int {
        headerBytes + 4 + entries.reduce(0) { $0 + encodedBytes($1) }
    }

    static func encodedBytes(_ entry: Entry) -> Int {
        switch entry.payload {
        case .empty: return Entry.encodedBytesMin
        case .command(let data, let stamp): return Entry.encodedBytesMin + 4 + data.count + 1 + (stamp == nil ? 0 : 16)
        case .membershipChange: return Entry.encodedBytesMin + 9
        case .initialMembership(let membership): return Entry.encodedBytesMin + 8 + 8 * membership.members.count
        }
    }

    /// The record at `offset` if it is whole and its checksum is right; nil otherwise.
    /// Never reads outside `bytes` and never allocates from the stored length.
    static func validRecord(in bytes: UnsafeRawBufferPointer, at offset: Int, recordBytesMax: Int)
        -> (kindByte: UInt8, bodyRange: Range<Int>, end: Int)?
    {
        guard bytes.count - offset >= headerBytes else { return nil }
        let length = Int(readUInt32(bytes, offset))
        guard length >= 1, length <= recordBytesMax, length <= bytes.count - offset - 8 else { return nil }
        let stored = readUInt32(bytes, offset + 4)
        let lengthCRC = CRC32C.update(0, buffer: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + 4]))
        let end = offset + 8 + length
        let computed = CRC32C.update(lengthCRC, buffer: UnsafeRawBufferPointer(rebasing: bytes[offset + 8..<end]))
        guard stored == computed else { return nil }
        return (bytes[offset + 8], (offset + 9)..<end, end)
    }

    static func decodeBody(kindByte: UInt8, body: [UInt8]) throws(WireError) -> Record {
        let rawKind = kindByte & ~(RecordKind.batchEndFlag | RecordKind.batchStartFlag)
        guard let kind = RecordKind(rawValue: rawKind) else { throw .unknownTag(field: "record.kind", tag: rawKind) }
        var reader = ByteReader(body)
        let record: Record
        switch kind {
        case .hardState: record = .hardState(try HardState.decode(from: &reader))
        case .entries: record = .entries(try reader.readEntries("record.entries"))
        case .truncate: record = .truncate(fromIndex: try reader.readUInt64("record.truncate"))
        case .snapshot:
            let rawMode = try reader.readUInt8("record.snapshot.mode")
            guard let mode = SnapshotMode(rawValue: rawMode) else { throw .unknownTag(field: "record.snapshot.mode", tag: rawMode) }
            record = .snapshot(try SnapshotMetadata.decode(from: &reader), mode)
        }
        try reader.expectEnd()
        return record
    }

    static func readUInt32(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
        var value: UInt32 = 0
        for index in 0..<4 { value |= UInt32(bytes[offset + index]) << UInt32(8 * index) }
        return value
    }
}

/// The fixed header at the start of every segment file.
///
/// ```
/// offset size
///      0    4  magic "FLWL"
///      4    1  version (1)
///      5    3  zero
///      8    8  sequence number (1, 2, 3, ... in creation order)
///     16    8  first index: the log's next index when the segment was created
///     24    4  number of records written before the segment was renamed into place (≥ 2)
///     28    4  CRC-32C of bytes 0..<28
/// ```
/// A segment is created complete (header, then a batch holding the hard state and the snapshot
/// marker in force, and for the first segment the initial entries) under a temporary name and
/// renamed, so every segment can be replayed on its own once older ones are compacted away, and
/// a crash never leaves a half-made header. Those first records cannot have been torn by a crash,
/// so recovery refuses to cut them off as a torn tail.
struct SegmentHeader: Equatable, Sendable {
    static let magic: [UInt8] = Array("FLWL".utf8)
    static let version: UInt8 = 1
    static let bytes = 32
    /// The hard state and the snapshot marker.
    static let stateRecordCount = 2

    var sequence: UInt64
    var firstIndex: UInt64
    var createdRecordCount: Int

    var encoded: [UInt8] {
        var writer = ByteWriter(capacity: SegmentHeader.bytes)
        writer.write(raw: SegmentHeader.magic)
        writer.write(SegmentHeader.version)
        writer.write(raw: [0, 0, 0])
        writer.write(sequence)
        writer.write(firstIndex)
        writer.write(UInt32(createdRecordCount))
        writer.write(CRC32C.checksum(writer.bytes))
        return writer.bytes
    }

    static func decode(_ bytes: [UInt8], segment: String) throws(StorageError) -> SegmentHeader {
        guard bytes.count >= SegmentHeader.bytes else {
            throw .corruptSegmentHeader(segment: segment, reason: "file of \(bytes.count) bytes is shorter than a header")
        }
        var reader = ByteReader(Array(bytes[0..<SegmentHeader.bytes]))
        do {
            guard try reader.readRaw(4, "magic") == magic else {
                throw StorageError.corruptSegmentHeader(segment: segment, reason: "bad magic")
            }
            let version = try reader.readUInt8("version")
            _ = try reader.readRaw(3, "reserved")
            let sequence = try reader.readUInt64("sequence")
            let firstIndex = try reader.readUInt64("firstIndex")
            let createdRecords = Int(try reader.readUInt32("createdRecords"))
            let stored = try reader.readUInt32("checksum")
            guard stored == CRC32C.checksum(bytes[0..<28]) else {
                throw StorageError.corruptSegmentHeader(segment: segment, reason: "checksum mismatch")
            }
            guard version == SegmentHeader.version else {
                throw StorageError.corruptSegmentHeader(segment: segment, reason: "unsupported version \(version)")
            }
            guard createdRecords >= stateRecordCount else {
                throw StorageError.corruptSegmentHeader(segment: segment, reason: "\(createdRecords) records at creation")
            }
            return SegmentHeader(sequence: sequence, firstIndex: firstIndex, createdRecordCount: createdRecords)
        } catch let error as StorageError {
            throw error
        } catch {
            throw .corruptSegmentHeader(segment: segment, reason: "\(error)")
        }
    }
}

/// The records of one segment, as far as they can be trusted.
struct SegmentScan: Equatable, Sendable {
    var header: SegmentHeader
    /// Records of whole batches, with their offsets.
    var records: [(offset: Int, record: Record)]
    /// Where the trusted bytes end: the end of the last whole batch. Beyond it, in the newest
    /// segment only, lies a torn tail to cut off.
    var validBytes: Int

    static func == (lhs: SegmentScan, rhs: SegmentScan) -> Bool {
        lhs.header == rhs.header && lhs.validBytes == rhs.validBytes
            && lhs.records.map(\.offset) == rhs.records.map(\.offset) && lhs.records.map(\.record) == rhs.records.map(\.record)
    }

    /// Reads a segment's bytes. `isNewest` allows a torn tail: the bytes of the last batch, from
    /// the end of the last whole batch to the end of the file, may be anything. Anything else is
    /// corruption and throws.
    ///
    /// Where does the last batch start? A batch is written only after the one before it is synced,
    /// so a crash can damage only the batch being written, but in any way: the kernel writes pages
    /// back in any order, so a later page of that batch may be on disk and an earlier one not. An
    /// invalid record is therefore a torn tail unless a valid record marked as the *start* of a
    /// batch follows it: a batch that began after the damage proves the damage was synced over,
    /// i.e. happened to data at rest. (A bad record followed only by valid continuation records of
    /// its own batch is the page-reordering case, and is a torn tail.)
    static func scan(_ bytes: [UInt8], segment: String, isNewest: Bool, recordBytesMax: Int) throws(StorageError) -> SegmentScan {
        let header = try SegmentHeader.decode(bytes, segment: segment)
        var records: [(offset: Int, record: Record)] = []
        var batchEndOffset = SegmentHeader.bytes
        var batchEndRecordCount = 0
        var offset = SegmentHeader.bytes
        var stopOffset: Int?
        let result: Result<Void, StorageError> = bytes.withUnsafeBytes { raw in
            while offset < raw.count {
                guard let found = RecordFormat.validRecord(in: raw, at: offset, recordBytesMax: recordBytesMax) else {
                    stopOffset = offset
                    break
                }
                let kindByte = found.kindByte
                let record: Record
                do throws(WireError) {
                    record = try RecordFormat.decodeBody(kindByte: kindByte, body: Array(raw[found.bodyRange]))
                } catch {
                    return .failure(.undecodableRecord(segment: segment, offset: offset, error: error))
                }
                records.append((offset, record))
                offset = found.end
                if kindByte & RecordKind.batchEndFlag != 0 {
                    batchEndOffset = offset
                    batchEndRecordCount = records.count
                }
            }
            if let stop = stopOffset, !isNewest || batchStarts(in: raw, after: stop, recordBytesMax: recordBytesMax) {
                return .failure(.corruptRecord(segment: segment, offset: stop))
            }
            return .success(())
        }
        try result.get()
        if !isNewest && batchEndOffset != bytes.count {
            throw .incompleteBatch(segment: segment, offset: batchEndOffset)
        }
        guard batchEndRecordCount >= header.createdRecordCount else {
            // Written before the rename: these records cannot have been torn by a crash.
            throw .corruptRecord(segment: segment, offset: batchEndOffset)
        }
        records.removeLast(records.count - batchEndRecordCount)
        return SegmentScan(header: header, records: records, validBytes: batchEndOffset)
    }

    /// Whether a valid record that starts a batch begins anywhere after `offset`. Every offset is
    /// tried because a damaged length says nothing about where the next record is; garbage passes
    /// for a record only if a CRC-32C matches by chance (odds 2^-32 per plausible offset).
    static func batchStarts(in bytes: UnsafeRawBufferPointer, after offset: Int, recordBytesMax: Int) -> Bool {
        var candidate = offset + 1
        while candidate + RecordFormat.headerBytes <= bytes.count {
            if let found = RecordFormat.validRecord(in: bytes, at: candidate, recordBytesMax: recordBytesMax),
               found.kindByte & RecordKind.batchStartFlag != 0 { return true }
            candidate += 1
        }
        return false
    }
}
