#if canImport(Glibc)
import Glibc
#endif
import Wire

/// Operating errors of the write-ahead log. Corruption is always reported, never repaired
/// silently, except for the one case a crash produces by itself: an incompletely written last
/// batch at the end of the newest segment (see `WriteAheadLog.open`).
public enum StorageError: Error, Equatable, Sendable {
    /// A system call failed; `errno` is the raw value.
    case io(operation: String, path: String, errno: Int32)
    /// Another process (or another open log in this one) holds the directory's lock.
    case directoryLocked(path: String)
    case corruptSegmentHeader(segment: String, reason: String)
    /// A record whose length or checksum is wrong, followed by valid data, or in a segment that is
    /// not the newest: not something a crash while appending can produce.
    case corruptRecord(segment: String, offset: Int)
    /// A record whose checksum is right but whose body does not decode: written by a bug or by an
    /// incompatible build.
    case undecodableRecord(segment: String, offset: Int, error: WireError)
    /// An older segment ends in the middle of a batch; segments are only rolled between batches.
    case incompleteBatch(segment: String, offset: Int)
    /// Records that contradict each other (an entry gap, a truncation beyond the end).
    case inconsistentLog(segment: String, offset: Int, reason: String)
    /// Sequence numbers of the segment files have a hole: a segment file was lost.
    case missingSegment(afterSequence: UInt64, foundSequence: UInt64)
    /// The entries kept start after the snapshot's successor: some were lost.
    case missingEntries(snapshotIndex: UInt64, firstIndexFound: UInt64)
    case missingSnapshot(index: UInt64, term: UInt64)
    case corruptSnapshot(file: String, reason: String)
    case segmentTooLarge(segment: String, bytes: Int, segmentBytesMax: Int)
    case snapshotTooLarge(bytes: Int, snapshotBytesMax: Int)
    /// One entry cannot fit in a record of `recordBytesMax`.
    case entryTooLarge(index: UInt64, bytes: Int, recordBytesMax: Int)
    /// One batch must fit in one segment (it is written with one write and one sync).
    case batchTooLarge(bytes: Int, batchBytesMax: Int)
    /// An earlier write or sync failed. After a failed fsync the kernel may have dropped the dirty
    /// pages and cleared the error (the PostgreSQL "fsyncgate", 2018), so retrying could report
    /// success for data that is gone: the log refuses all further use; reopen it to recover.
    case unusableAfterFailure
    case closed
}

extension StorageError: CustomStringConvertible {
    /// One line for the operator: which file, and for a failed system call the system's own words
    /// ("No space left on device"), not only the errno.
    public var description: String {
        switch self {
        case .io(let operation, let path, let errno):
            "\(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))"
        case .directoryLocked(let path): "\(path) is locked by another process"
        case .corruptSegmentHeader(let segment, let reason): "segment \(segment): corrupt header: \(reason)"
        case .corruptRecord(let segment, let offset): "segment \(segment): corrupt record at offset \(offset)"
        case .undecodableRecord(let segment, let offset, let error): "segment \(segment): undecodable record at offset \(offset): \(error)"
        case .incompleteBatch(let segment, let offset): "segment \(segment): incomplete batch at offset \(offset)"
        case .inconsistentLog(let segment, let offset, let reason): "segment \(segment) at offset \(offset): \(reason)"
        case .missingSegment(let after, let found): "segment missing after sequence \(after) (next found: \(found))"
        case .missingEntries(let snapshotIndex, let first): "entries missing between snapshot \(snapshotIndex) and index \(first)"
        case .missingSnapshot(let index, let term): "snapshot at index \(index), term \(term) is missing"
        case .corruptSnapshot(let file, let reason): "snapshot \(file) is corrupt: \(reason)"
        case .segmentTooLarge(let segment, let bytes, let max): "segment \(segment) has \(bytes) bytes, over \(max)"
        case .snapshotTooLarge(let bytes, let max): "snapshot of \(bytes) bytes, over \(max)"
        case .entryTooLarge(let index, let bytes, let max): "entry \(index) of \(bytes) bytes does not fit a record of \(max)"
        case .batchTooLarge(let bytes, let max): "batch of \(bytes) bytes, over \(max)"
        case .unusableAfterFailure: "the log refuses use after an earlier failed write or sync"
        case .closed: "the log is closed"
        }
    }
}
