import Raft

/// Rebuilds the persistent state from records, oldest first. Pure: the shell feeds it what it
/// read; every contradiction between records is a typed error, never a guess.
///
/// The entries kept form one contiguous run `runStart ..< nextIndex`. The oldest remaining
/// segment starts the run at its first index; entries before it were compacted away together with
/// their segments, which is only allowed once a snapshot covers them (checked in `finish`).
struct LogReplay {
    var hardState = HardState()
    var snapshot = SnapshotMetadata(index: 0, term: 0, membership: .empty)
    var entries: [Entry] = []
    var runStart: UInt64 = 1
    var nextIndex: UInt64 = 1
    var segmentsSeen = 0
    var lastSequence: UInt64 = 0

    mutating func beginSegment(_ header: SegmentHeader, name: String) throws(StorageError) {
        if segmentsSeen == 0 {
            guard header.firstIndex >= 1 else {
                throw .corruptSegmentHeader(segment: name, reason: "first index 0")
            }
            runStart = header.firstIndex
            nextIndex = header.firstIndex
        } else {
            guard header.sequence == lastSequence + 1 else {
                throw .missingSegment(afterSequence: lastSequence, foundSequence: header.sequence)
            }
            guard header.firstIndex == nextIndex else {
                throw .inconsistentLog(segment: name, offset: 0,
                                       reason: "segment starts at \(header.firstIndex), log continues at \(nextIndex)")
            }
        }
        lastSequence = header.sequence
        segmentsSeen += 1
    }

    mutating func apply(_ record: Record, segment: String, offset: Int) throws(StorageError) {
        func inconsistent(_ reason: String) -> StorageError {
            .inconsistentLog(segment: segment, offset: offset, reason: reason)
        }
        switch record {
        case .hardState(let state):
            hardState = state
        case .entries(let run):
            for (position, entry) in run.enumerated() where entry.index != nextIndex + UInt64(position) {
                throw inconsistent("entry \(entry.index) where \(nextIndex + UInt64(position)) was expected")
            }
            entries.append(contentsOf: run)
            nextIndex += UInt64(run.count)
        case .truncate(let index):
            guard index > snapshot.index, index <= nextIndex else {
                throw inconsistent("truncation at \(index) outside \(snapshot.index + 1)...\(nextIndex)")
            }
            if index >= runStart {
                entries.removeLast(Int(nextIndex - index))
            } else {
                entries.removeAll()
                runStart = index
            }
            nextIndex = index
        case .snapshot(let metadata, let mode):
            guard metadata.index >= snapshot.index else {
                throw inconsistent("snapshot at \(metadata.index) older than \(snapshot.index)")
            }
            snapshot = metadata
            switch mode {
            case .installed:
                entries.removeAll()
                runStart = metadata.index + 1
                nextIndex = metadata.index + 1
            case .compacted:
                if metadata.index >= runStart {
                    let dropped = min(UInt64(entries.count), metadata.index + 1 - runStart)
                    entries.removeFirst(Int(dropped))
                    runStart = metadata.index + 1
                    nextIndex = max(nextIndex, runStart)
                }
            }
        }
    }

    /// The replayed state, once every segment is read.
    func finish() throws(StorageError) -> (hardState: HardState, snapshot: SnapshotMetadata, entries: [Entry]) {
        guard runStart <= snapshot.index + 1 else {
            throw .missingEntries(snapshotIndex: snapshot.index, firstIndexFound: runStart)
        }
        return (hardState, snapshot, entries)
    }
}
