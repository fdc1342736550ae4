import Glibc
import Raft
import Wire

/// The write-ahead log of one Raft node: segment files of checksummed records, plus the newest
/// snapshot in its own file. A shell: it does the IO the core's `Ready` asks for and decides nothing
/// about Raft.
///
/// Durability contract: when `append(_:)` or `compact(through:)` returns, everything it was given
/// is on stable storage (written, then `fdatasync` of the segment; creating, renaming or removing
/// a file is followed by an `fsync` of the directory). So the caller may send the Ready's messages
/// as soon as `append` returns (etcd raft's "persist before send"; Raft figure 2: "updated on
/// stable storage before responding to RPCs").
///
/// Ownership: not thread-safe. One task owns a log and calls it sequentially; the directory is
/// locked (`flock`) so that a second owner, in this process or another, fails to open it.
///
/// Layout of the directory:
/// - `wal-<sequence>-<first index>.log`, 16 hex digits each: segments, at most `segmentBytesMax`
///   each. The sequence number orders them; the first index alone cannot, because a truncation
///   can make a newer segment start below an older one's first index (etcd names its files the
///   same way, `<seq>-<index>.wal`, for the same reason).
/// - `snap-<index>-<term>.snap`: the newest snapshot (older ones are removed once a newer one's
///   marker is durable).
/// - `LOCK`; `*.tmp` files are half-made segments or snapshots from a crash, removed on open.
public final class WriteAheadLog {
    public let directory: String
    public let configuration: WriteAheadLogConfiguration

    struct SegmentFile {
        var sequence: UInt64
        var firstIndex: UInt64
        var name: String { "wal-\(hex16(sequence))-\(hex16(firstIndex)).log" }
    }

    enum Status { case usable, failed, closed }

    var lockDescriptor: Int32
    var segmentDescriptor: Int32
    var segments: [SegmentFile]
    var segmentBytes: Int
    var nextIndex: UInt64
    var hardState: HardState
    var snapshotMetadata: SnapshotMetadata
    var status = Status.usable

    /// Syncs of segment data done by `append` and `compact` (for the tests and the benchmark).
    public private(set) var syncCount = 0
    /// Removing an outdated snapshot or segment failed after the new state was durable. The log is
    /// still correct (it only holds more than it needs); the next compaction retries.
    public private(set) var cleanupFailure: StorageError?

    public var lastIndex: UInt64 { nextIndex - 1 }
    public var snapshotIndex: UInt64 { snapshotMetadata.index }
    public var segmentNames: [String] { segments.map(\.name) }

    init(directory: String, configuration: WriteAheadLogConfiguration, lockDescriptor: Int32, segmentDescriptor: Int32,
         segments: [SegmentFile], segmentBytes: Int, nextIndex: UInt64, hardState: HardState, snapshotMetadata: SnapshotMetadata) {
        self.directory = directory
        self.configuration = configuration
        self.lockDescriptor = lockDescriptor
        self.segmentDescriptor = segmentDescriptor
        self.segments = segments
        self.segmentBytes = segmentBytes
        self.nextIndex = nextIndex
        self.hardState = hardState
        self.snapshotMetadata = snapshotMetadata
    }

    deinit { closeDescriptors() }

    /// Releases the files and the directory lock. Further calls throw `StorageError.closed`.
    public func close() {
        closeDescriptors()
        status = .closed
    }

    func closeDescriptors() {
        if segmentDescriptor >= 0 { FileIO.close(segmentDescriptor); segmentDescriptor = -1 }
        if lockDescriptor >= 0 { FileIO.close(lockDescriptor); lockDescriptor = -1 }
    }

    func path(_ name: String) -> String { directory + "/" + name }

    func checkUsable() throws(StorageError) {
        switch status {
        case .usable: return
        case .failed: throw .unusableAfterFailure
        case .closed: throw .closed
        }
    }

    /// Runs `body`; any error it throws leaves the log unusable (see `StorageError.unusableAfterFailure`).
    func failing<T>(_ body: () throws(StorageError) -> T) throws(StorageError) -> T {
        do {
            return try body()
        } catch {
            status = .failed
            throw error
        }
    }

    // MARK: - Appending

    /// Makes `batch` durable with one sync of the segment (group commit): every record of the
    /// batch is written with one `write`, then one `fdatasync`. A batch is atomic across crashes:
    /// after a restart either all of it is there or none of it. The one exception: a batch that
    /// only raises the commit index is written but not synced (see `needsSync`).
    ///
    /// Preconditions (the Raft core guarantees them; breaking them is a bug in the caller):
    /// entries are contiguous, start after the snapshot (the batch's, else the stored one) and at
    /// most one past the stored log's end.
    public func append(_ batch: WriteBatch) throws(StorageError) {
        try checkUsable()
        if batch.isEmpty { return }
        var writer = ByteWriter(capacity: 4096)
        var records: [Record] = []
        var base = (snapshotIndex: snapshotMetadata.index, nextIndex: nextIndex)
        if let snapshot = batch.snapshot {
            precondition(snapshot.metadata.index >= snapshotMetadata.index,
                         "installing snapshot \(snapshot.metadata.index) older than the stored \(snapshotMetadata.index)")
            records.append(.snapshot(snapshot.metadata, .installed))
            base = (snapshot.metadata.index, snapshot.metadata.index + 1)
        }
        if let first = batch.entries.first {
            precondition(first.index > base.snapshotIndex && first.index <= base.nextIndex,
                         "entries from \(first.index) do not attach to a log with snapshot \(base.snapshotIndex), next \(base.nextIndex)")
            for (offset, entry) in batch.entries.enumerated() {
                precondition(entry.index == first.index + UInt64(offset), "entries not contiguous at \(entry.index)")
            }
            if first.index < base.nextIndex { records.append(.truncate(fromIndex: first.index)) }
            records.append(contentsOf: try entryRecords(batch.entries))
        }
        if let state = batch.hardState { records.append(.hardState(state)) }
        for (position, record) in records.enumerated() {
            RecordFormat.append(record, startsBatch: position == 0, endsBatch: position == records.count - 1, to: &writer)
        }
        try makeRoom(forBatchBytes: writer.bytes.count)
        if let snapshot = batch.snapshot { try failing { () throws(StorageError) in try writeSnapshotFile(snapshot) } }
        if needsSync(batch) {
            try failing { () throws(StorageError) in try writeAndSync(writer.bytes) }
        } else {
            try failing { () throws(StorageError) in try writeWithoutSync(writer.bytes) }
        }

        if let snapshot = batch.snapshot {
            snapshotMetadata = snapshot.metadata
            nextIndex = snapshot.metadata.index + 1
        }
        if let last = batch.entries.last { nextIndex = last.index + 1 }
        if let state = batch.hardState { hardState = state }
        if batch.snapshot != nil { removeOutdatedFiles() }
    }

    /// Records the application's snapshot `snapshot` (from `RaftNode.createSnapshot`): writes its
    /// file atomically, makes a marker durable, then removes the older snapshot and every segment
    /// that holds only entries the snapshot covers. Entries after the snapshot stay.
    public func compact(through snapshot: Snapshot) throws(StorageError) {
        try checkUsable()
        precondition(snapshot.metadata.index > snapshotMetadata.index && snapshot.metadata.index < nextIndex,
                     "compacting through \(snapshot.metadata.index) outside \(snapshotMetadata.index + 1)..<\(nextIndex)")
        var writer = ByteWriter()
        RecordFormat.append(.snapshot(snapshot.metadata, .compacted), startsBatch: true, endsBatch: true, to: &writer)
        try makeRoom(forBatchBytes: writer.bytes.count)
        try failing { () throws(StorageError) in
            try writeSnapshotFile(snapshot)
            try writeAndSync(writer.bytes)
        }
        snapshotMetadata = snapshot.metadata
        removeOutdatedFiles()
    }

    /// Splits entries into records of at most `recordBytesMax`.
    func entryRecords(_ entries: [Entry]) throws(StorageError) -> [Record] {
        var records: [Record] = []
        var start = 0
        var runBytes = RecordFormat.headerBytes + 4
        for (position, entry) in entries.enumerated() {
            let bytes = RecordFormat.encodedBytes(entry)
            guard RecordFormat.headerBytes + 4 + bytes <= configuration.recordBytesMax else {
                throw .entryTooLarge(index: entry.index, bytes: bytes, recordBytesMax: configuration.recordBytesMax)
            }
            if runBytes + bytes > configuration.recordBytesMax {
                records.append(.entries(Array(entries[start..<position])))
                start = position
                runBytes = RecordFormat.headerBytes + 4
            }
            runBytes += bytes
        }
        records.append(.entries(Array(entries[start...])))
        return records
    }

    /// Rolls over to a new segment when the batch would take the current one past its bound. A
    /// batch is never split across segments, which keeps it atomic on recovery.
    func makeRoom(forBatchBytes batchBytes: Int) throws(StorageError) {
        guard segmentBytes + batchBytes > configuration.segmentBytesMax else { return }
        let freshBytes = SegmentHeader.bytes + stateBatch().count
        guard freshBytes + batchBytes <= configuration.segmentBytesMax else {
            throw .batchTooLarge(bytes: batchBytes, batchBytesMax: configuration.segmentBytesMax - freshBytes)
        }
        try failing { () throws(StorageError) in
            let sequence = segments.last!.sequence + 1
            let segment = SegmentFile(sequence: sequence, firstIndex: nextIndex)
            let (descriptor, bytes) = try createSegment(segment, extraBatch: [], extraRecordCount: 0)
            FileIO.close(segmentDescriptor)
            segmentDescriptor = descriptor
            segmentBytes = bytes
            segments.append(segment)
        }
    }

    /// False only for a batch that changes nothing but the commit index.
    ///
    /// The commit index is volatile state in Raft (the paper's Figure 2 lists `commitIndex` under
    /// "Volatile state on all servers"): a server that loses it after a crash learns it again from
    /// the leader, or as leader from its followers' match indexes, and an in-memory state machine
    /// is rebuilt from the log anyway. Term and vote, which must never go backwards, are synced
    /// whenever they change, so the term and vote of `hardState` are always durable. Skipping this
    /// sync removes the third fsync from a leader's commit round (write entries, follower writes,
    /// then the new commit index), which otherwise bounds a closed loop of proposers to one
    /// commit per three sequential fsyncs. A later synced batch makes the record durable too; a
    /// crash before that leaves at most a torn tail, which recovery cuts.
    func needsSync(_ batch: WriteBatch) -> Bool {
        guard batch.snapshot == nil, batch.entries.isEmpty, let state = batch.hardState else { return true }
        return state.term != hardState.term || state.votedFor != hardState.votedFor
    }

    func writeWithoutSync(_ bytes: [UInt8]) throws(StorageError) {
        let name = path(segments.last!.name)
        try FileIO.writeAll(segmentDescriptor, bytes, path: name)
        segmentBytes += bytes.count
    }

    func writeAndSync(_ bytes: [UInt8]) throws(StorageError) {
        let name = path(segments.last!.name)
        try FileIO.writeAll(segmentDescriptor, bytes, path: name)
        try FileIO.dataSync(segmentDescriptor, path: name)
        segmentBytes += bytes.count
        syncCount += 1
    }

    /// The batch every segment starts with: the state in force when it was created, so that the
    /// segment can be replayed once all older segments are gone.
    func stateBatch() -> [UInt8] {
        var writer = ByteWriter()
        RecordFormat.append(.hardState(hardState), startsBatch: true, endsBatch: false, to: &writer)
        RecordFormat.append(.snapshot(snapshotMetadata, .compacted), startsBatch: false, endsBatch: true, to: &writer)
        return writer.bytes
    }

    /// Writes the segment complete under a temporary name, syncs it, renames it into place and
    /// syncs the directory. Returns a descriptor open for appending and the segment's size.
    func createSegment(_ segment: SegmentFile, extraBatch: [UInt8], extraRecordCount: Int) throws(StorageError) -> (Int32, Int) {
        let finalPath = path(segment.name)
        let temporaryPath = finalPath + ".tmp"
        let header = SegmentHeader(sequence: segment.sequence, firstIndex: segment.firstIndex,
                                   createdRecordCount: SegmentHeader.stateRecordCount + extraRecordCount)
        let bytes = header.encoded + stateBatch() + extraBatch
        let descriptor = try FileIO.open(temporaryPath, flags: O_WRONLY | O_CREAT | O_TRUNC | O_APPEND)
        do {
            try FileIO.writeAll(descriptor, bytes, path: temporaryPath)
            try FileIO.sync(descriptor, path: temporaryPath)
            try FileIO.rename(temporaryPath, finalPath)
            try FileIO.syncDirectory(directory)
        } catch {
            FileIO.close(descriptor)
            throw error
        }
        return (descriptor, bytes.count)
    }

    /// Temporary file, fsync, rename, fsync of the directory: the snapshot file is either whole or
    /// absent, and it is durable before the marker that refers to it is written.
    func writeSnapshotFile(_ snapshot: Snapshot) throws(StorageError) {
        guard snapshot.data.count <= configuration.snapshotBytesMax else {
            throw .snapshotTooLarge(bytes: snapshot.data.count, snapshotBytesMax: configuration.snapshotBytesMax)
        }
        let finalPath = path(SnapshotFile.name(index: snapshot.metadata.index, term: snapshot.metadata.term))
        let temporaryPath = finalPath + ".tmp"
        let descriptor = try FileIO.open(temporaryPath, flags: O_WRONLY | O_CREAT | O_TRUNC)
        defer { FileIO.close(descriptor) }
        try FileIO.writeAll(descriptor, SnapshotFile.encode(snapshot), path: temporaryPath)
        try FileIO.sync(descriptor, path: temporaryPath)
        try FileIO.rename(temporaryPath, finalPath)
        try FileIO.syncDirectory(directory)
    }

    /// After a snapshot marker is durable: removes older snapshot files and every segment whose
    /// entries all lie at or below the snapshot. Segment k holds only entries below the first
    /// index of segment k+1 (segments are created at the log's end and truncation only removes),
    /// so it can go once `segments[k+1].firstIndex <= snapshotIndex + 1`. Oldest first, so a crash
    /// midway leaves a replayable suffix.
    func removeOutdatedFiles() {
        do {
            let current = SnapshotFile.name(index: snapshotMetadata.index, term: snapshotMetadata.term)
            var removed = false
            for name in try FileIO.listDirectory(directory) where SnapshotFile.parseName(name) != nil && name != current {
                try FileIO.remove(path(name))
                removed = true
            }
            while segments.count > 1 && segments[1].firstIndex <= snapshotMetadata.index + 1 {
                try FileIO.remove(path(segments[0].name))
                segments.removeFirst()
                removed = true
            }
            if removed { try FileIO.syncDirectory(directory) }
            cleanupFailure = nil
        } catch {
            cleanupFailure = error
        }
    }
}
