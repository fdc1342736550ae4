import Glibc
import Raft
import Wire

extension WriteAheadLog {
    /// Opens (creating if needed) the log in `directory` and recovers the state it holds.
    ///
    /// A directory without segments is initialised with `initialState` (a founding server passes
    /// `PersistentState.bootstrap(voters:)`, a joining one the default), written atomically.
    ///
    /// Recovery replays every segment, oldest first. The one damage a crash can cause by itself is
    /// a torn tail: the newest segment ending inside its last batch (a record cut short, garbage
    /// or zeros after it, or records of a batch whose last record is missing). That batch was never
    /// acknowledged (its sync had not returned), so it is cut off and the file truncated. Any other
    /// damage (a bad record followed by a valid one, a bad record in an older segment, a missing
    /// segment or snapshot) is reported as a `StorageError` and nothing is changed: silently
    /// resetting a Raft log could make this server forget votes or acknowledged entries.
    public static func open(
        directory: String,
        configuration: WriteAheadLogConfiguration = WriteAheadLogConfiguration(),
        initialState: PersistentState = .joining()
    ) throws(StorageError) -> (WriteAheadLog, PersistentState) {
        try FileIO.makeDirectory(directory)
        let lock = try FileIO.lock(directory + "/LOCK", directory: directory)
        do {
            return try recover(directory: directory, configuration: configuration, initialState: initialState, lock: lock)
        } catch {
            FileIO.close(lock)
            throw error
        }
    }

    static func recover(
        directory: String, configuration: WriteAheadLogConfiguration, initialState: PersistentState, lock: Int32
    ) throws(StorageError) -> (WriteAheadLog, PersistentState) {
        var names = try FileIO.listDirectory(directory)
        let temporary = names.filter { $0.hasSuffix(".tmp") }
        for name in temporary { try FileIO.remove(directory + "/" + name) }
        if !temporary.isEmpty { try FileIO.syncDirectory(directory) }
        names.removeAll { $0.hasSuffix(".tmp") }

        var segments: [SegmentFile] = []
        for name in names {
            if let segment = parseSegmentName(name) { segments.append(segment) }
        }
        segments.sort { $0.sequence < $1.sequence }
        if segments.isEmpty {
            return try initialise(directory: directory, configuration: configuration, initialState: initialState, lock: lock)
        }

        var replay = LogReplay()
        var newestValidBytes = 0
        var newestFileBytes = 0
        for (position, segment) in segments.enumerated() {
            let segmentPath = directory + "/" + segment.name
            let bytes = try FileIO.readFile(segmentPath, bytesMax: configuration.segmentBytesMax) { size in
                .segmentTooLarge(segment: segment.name, bytes: size, segmentBytesMax: configuration.segmentBytesMax)
            }
            let isNewest = position == segments.count - 1
            let scan = try SegmentScan.scan(bytes, segment: segment.name, isNewest: isNewest,
                                            recordBytesMax: configuration.recordBytesMax)
            guard scan.header.sequence == segment.sequence, scan.header.firstIndex == segment.firstIndex else {
                throw .corruptSegmentHeader(segment: segment.name, reason: "header disagrees with the file name")
            }
            try replay.beginSegment(scan.header, name: segment.name)
            for (offset, record) in scan.records {
                try replay.apply(record, segment: segment.name, offset: offset)
            }
            newestValidBytes = scan.validBytes
            newestFileBytes = bytes.count
        }
        let recovered = try replay.finish()
        let snapshot = try loadSnapshot(recovered.snapshot, directory: directory, configuration: configuration)

        let newest = segments.last!
        let newestPath = directory + "/" + newest.name
        let descriptor = try FileIO.open(newestPath, flags: O_WRONLY | O_APPEND)
        if newestValidBytes < newestFileBytes {
            // The torn tail: cut it off durably before anything is appended after it.
            do {
                try FileIO.truncate(descriptor, to: newestValidBytes, path: newestPath)
                try FileIO.dataSync(descriptor, path: newestPath)
            } catch {
                FileIO.close(descriptor)
                throw error
            }
        }
        let log = WriteAheadLog(
            directory: directory, configuration: configuration, lockDescriptor: lock, segmentDescriptor: descriptor,
            segments: segments, segmentBytes: newestValidBytes,
            nextIndex: recovered.entries.last.map { $0.index + 1 } ?? recovered.snapshot.index + 1,
            hardState: recovered.hardState, snapshotMetadata: recovered.snapshot)
        // Snapshots written before a crash that came before their marker, and older ones.
        log.removeOutdatedFiles()
        return (log, PersistentState(hardState: recovered.hardState, snapshot: snapshot, entries: recovered.entries))
    }

    static func initialise(
        directory: String, configuration: WriteAheadLogConfiguration, initialState: PersistentState, lock: Int32
    ) throws(StorageError) -> (WriteAheadLog, PersistentState) {
        let metadata = initialState.snapshot.metadata
        let log = WriteAheadLog(
            directory: directory, configuration: configuration, lockDescriptor: lock, segmentDescriptor: -1,
            segments: [], segmentBytes: 0, nextIndex: metadata.index + 1,
            hardState: initialState.hardState, snapshotMetadata: metadata)
        do {
            try initialise(log, with: initialState)
        } catch {
            // `open` closes the lock on failure; the log must not close it a second time.
            log.lockDescriptor = -1
            throw error
        }
        return (log, initialState)
    }

    static func initialise(_ log: WriteAheadLog, with initialState: PersistentState) throws(StorageError) {
        let metadata = initialState.snapshot.metadata
        for (offset, entry) in initialState.entries.enumerated() {
            precondition(entry.index == metadata.index + 1 + UInt64(offset),
                         "initial entry \(entry.index) does not continue snapshot \(metadata.index) contiguously")
        }
        if metadata.index > 0 { try log.writeSnapshotFile(initialState.snapshot) }
        // The initial entries go into the new segment before its rename, so the directory holds
        // either the whole initial state or no segment at all.
        var writer = ByteWriter()
        var recordCount = 0
        if !initialState.entries.isEmpty {
            let records = try log.entryRecords(initialState.entries)
            recordCount = records.count
            for (position, record) in records.enumerated() {
                RecordFormat.append(record, startsBatch: position == 0, endsBatch: position == records.count - 1, to: &writer)
            }
        }
        let freshBytes = SegmentHeader.bytes + log.stateBatch().count
        guard freshBytes + writer.bytes.count <= log.configuration.segmentBytesMax else {
            throw .batchTooLarge(bytes: writer.bytes.count, batchBytesMax: log.configuration.segmentBytesMax - freshBytes)
        }
        let segment = SegmentFile(sequence: 1, firstIndex: metadata.index + 1)
        let (descriptor, bytes) = try log.createSegment(segment, extraBatch: writer.bytes, extraRecordCount: recordCount)
        log.segmentDescriptor = descriptor
        log.segmentBytes = bytes
        log.segments = [segment]
        log.nextIndex = initialState.entries.last.map { $0.index + 1 } ?? metadata.index + 1
        log.removeOutdatedFiles()
    }

    static func parseSegmentName(_ name: String) -> SegmentFile? {
        guard name.hasPrefix("wal-"), name.hasSuffix(".log") else { return nil }
        let parts = name.dropFirst(4).dropLast(4).split(separator: "-")
        guard parts.count == 2, parts.allSatisfy({ $0.count == 16 }),
              let sequence = UInt64(parts[0], radix: 16), let firstIndex = UInt64(parts[1], radix: 16) else { return nil }
        return SegmentFile(sequence: sequence, firstIndex: firstIndex)
    }

    static func loadSnapshot(
        _ metadata: SnapshotMetadata, directory: String, configuration: WriteAheadLogConfiguration
    ) throws(StorageError) -> Snapshot {
        // Index 0 captures nothing: there is no file, only the (empty) membership.
        if metadata.index == 0 { return Snapshot(metadata: metadata, data: []) }
        let name = SnapshotFile.name(index: metadata.index, term: metadata.term)
        let bytesMax = configuration.snapshotBytesMax + SnapshotFile.overheadBytesMax
        let bytes: [UInt8]
        do {
            bytes = try FileIO.readFile(directory + "/" + name, bytesMax: bytesMax) { size in
                .snapshotTooLarge(bytes: size, snapshotBytesMax: configuration.snapshotBytesMax)
            }
        } catch .io(_, _, ENOENT) {
            throw .missingSnapshot(index: metadata.index, term: metadata.term)
        }
        let snapshot = try SnapshotFile.decode(bytes, file: name)
        guard snapshot.metadata == metadata else {
            throw .corruptSnapshot(file: name, reason: "metadata \(snapshot.metadata) differs from the log's \(metadata)")
        }
        return snapshot
    }
}
