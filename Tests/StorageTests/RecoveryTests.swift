import TestSupport
import Foundation
import Raft
import Testing
import Wire
@testable import Storage

/// Crashes and damage: what a crash can do by itself is repaired (a torn tail); everything else is
/// reported as a typed error and leaves the files alone.
@Suite(.onBackgroundThreads) struct RecoveryTests {
    func openError(_ directory: String, configuration: WriteAheadLogConfiguration = WriteAheadLogConfiguration()) -> StorageError? {
        do {
            _ = try WriteAheadLog.open(directory: directory, configuration: configuration)
            return nil
        } catch {
            return error
        }
    }

    /// Writes two batches after the bootstrap and returns the model state after the first one and
    /// the offset at which the second batch starts in the (single) segment.
    func logWithTwoBatches(_ directory: TemporaryDirectory) throws -> (before: PersistentState, after: PersistentState, lastBatchOffset: Int) {
        var model = ModelLog(state: .bootstrap(voters: voters))
        let (log, _) = try WriteAheadLog.open(directory: directory.wal, initialState: model.state)
        let first = WriteBatch(entries: entries(2...4, term: 2), hardState: HardState(term: 2, votedFor: NodeID(1), commitIndex: 2))
        try log.append(first)
        model.apply(first)
        let before = model.state
        let offset = readBytes(segmentPaths(in: directory.wal)[0]).count
        // Two records in the last batch: a truncation, entries and a hard state.
        let second = WriteBatch(entries: entries(4...6, term: 3), hardState: HardState(term: 3, commitIndex: 4))
        try log.append(second)
        model.apply(second)
        log.close()
        return (before, model.state, offset)
    }

    @Test func tornTailAtEveryByteOffsetRecoversThePrefix() throws {
        let directory = TemporaryDirectory()
        let (before, after, batchOffset) = try logWithTwoBatches(directory)
        let segment = segmentPaths(in: directory.wal)[0]
        let whole = readBytes(segment)
        for cut in batchOffset..<whole.count {
            let copy = try directory.copyOfLog("cut-\(cut)")
            let copySegment = segmentPaths(in: copy)[0]
            writeBytes(copySegment, Array(whole[..<cut]))
            let (log, state) = try WriteAheadLog.open(directory: copy)
            #expect(state == before, "cut at \(cut)")
            #expect(readBytes(copySegment).count == batchOffset, "tail cut off durably (cut at \(cut))")
            // The log goes on from the prefix.
            try log.append(WriteBatch(entries: entries(5...5, term: 4), hardState: HardState(term: 4, commitIndex: 2)))
            log.close()
            let (_, reopened) = try WriteAheadLog.open(directory: copy)
            #expect(reopened.entries.last == entry(5, term: 4), "cut at \(cut)")
            try FileManager.default.removeItem(atPath: copy)
        }
        let (_, state) = try WriteAheadLog.open(directory: directory.wal)
        #expect(state == after)
    }

    /// A crash after the file grew but before the data reached the disk can leave zeros or garbage.
    @Test func zerosOrGarbageAfterTheLastBatchAreATornTail() throws {
        let directory = TemporaryDirectory()
        let (_, after, _) = try logWithTwoBatches(directory)
        let segment = segmentPaths(in: directory.wal)[0]
        let whole = readBytes(segment)
        var random = TestSupport.SplitMix64(seed: 42)
        for (label, tail) in [("zeros", [UInt8](repeating: 0, count: 4096)),
                              ("garbage", (0..<777).map { _ in UInt8(truncatingIfNeeded: random.next()) })] {
            let copy = try directory.copyOfLog(label)
            writeBytes(segmentPaths(in: copy)[0], whole + tail)
            let (_, state) = try WriteAheadLog.open(directory: copy)
            #expect(state == after, "\(label)")
            #expect(readBytes(segmentPaths(in: copy)[0]).count == whole.count)
        }
    }

    /// Pages of one write reach the disk in any order: the last batch's first record may be lost
    /// while its later records survive. That batch was never acknowledged: a torn tail.
    @Test func aLostEarlierPageOfTheLastBatchIsATornTail() throws {
        let directory = TemporaryDirectory()
        let (before, _, batchOffset) = try logWithTwoBatches(directory)
        let segment = segmentPaths(in: directory.wal)[0]
        var bytes = readBytes(segment)
        // Zero the first record of the last batch (its header and part of its body).
        for position in batchOffset..<(batchOffset + 12) { bytes[position] = 0 }
        writeBytes(segment, bytes)
        let (_, state) = try WriteAheadLog.open(directory: directory.wal)
        #expect(state == before)
        #expect(readBytes(segment).count == batchOffset)
    }

    @Test func aBitFlipInTheMiddleIsACorruptRecordNotAReset() throws {
        let directory = TemporaryDirectory()
        let (_, _, batchOffset) = try logWithTwoBatches(directory)
        let segment = segmentPaths(in: directory.wal)[0]
        let whole = readBytes(segment)
        let name = String(segment.split(separator: "/").last!)
        // Every byte of the records before the last batch: the bootstrap's state batch, its entry,
        // and the first appended batch. Each flip must be reported at the record it damages.
        for position in SegmentHeader.bytes..<batchOffset {
            var damaged = whole
            damaged[position] ^= 0x10
            let copy = try directory.copyOfLog("flip-\(position)")
            writeBytes(segmentPaths(in: copy)[0], damaged)
            let error = openError(copy)
            if case .corruptRecord(segment: name, offset: let offset)? = error {
                #expect(offset <= position, "flip at \(position) reported at \(offset)")
            } else {
                Issue.record("flip at \(position): \(String(describing: error))")
            }
            #expect(readBytes(segmentPaths(in: copy)[0]) == damaged, "files are left alone")
            try FileManager.default.removeItem(atPath: copy)
        }
    }

    @Test func aDamagedSegmentHeaderIsATypedError() throws {
        let directory = TemporaryDirectory()
        _ = try logWithTwoBatches(directory)
        let segment = segmentPaths(in: directory.wal)[0]
        var bytes = readBytes(segment)
        bytes[5] ^= 1
        writeBytes(segment, bytes)
        #expect(throws: StorageError.self) { _ = try WriteAheadLog.open(directory: directory.wal) }
    }

    /// A damaged older segment is corruption even at its very end: only the newest segment can
    /// have been torn by a crash.
    @Test func aCorruptEarlierSegmentIsATypedError() throws {
        let directory = TemporaryDirectory()
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory.wal, configuration: smallConfiguration,
                                                  initialState: .bootstrap(voters: voters))
            for _ in 0..<20 {
                let first = log.lastIndex + 1
                try log.append(WriteBatch(entries: entries(first...first + 2, term: 1, bytes: 100)))
            }
        }
        let segments = segmentPaths(in: directory.wal)
        #expect(segments.count >= 3)
        let name = String(segments[0].split(separator: "/").last!)
        var bytes = readBytes(segments[0])
        bytes[bytes.count - 3] ^= 0xFF
        writeBytes(segments[0], bytes)
        let error = openError(directory.wal, configuration: smallConfiguration)
        if case .corruptRecord(segment: name, offset: _)? = error {} else {
            Issue.record("damage in an older segment: \(String(describing: error))")
        }
        // Cut short instead of damaged: an incomplete batch, also refused.
        writeBytes(segments[0], Array(bytes[..<(bytes.count - 3)]))
        #expect(throws: StorageError.self) { _ = try WriteAheadLog.open(directory: directory.wal, configuration: smallConfiguration) }
    }

    @Test func aMissingMiddleSegmentIsATypedError() throws {
        let directory = TemporaryDirectory()
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory.wal, configuration: smallConfiguration,
                                                  initialState: .bootstrap(voters: voters))
            for _ in 0..<20 {
                let first = log.lastIndex + 1
                try log.append(WriteBatch(entries: entries(first...first + 2, term: 1, bytes: 100)))
            }
        }
        try FileManager.default.removeItem(atPath: segmentPaths(in: directory.wal)[1])
        #expect(throws: StorageError.missingSegment(afterSequence: 1, foundSequence: 3)) {
            _ = try WriteAheadLog.open(directory: directory.wal, configuration: smallConfiguration)
        }
    }

    /// Copies of the directory taken between writes are what a crash at that moment leaves: each
    /// must recover exactly the state after the batches that had returned. Includes roll-overs,
    /// truncations and compactions, with a seeded workload.
    @Test func crashBetweenWritesRecoversEveryAcknowledgedBatch() throws {
        let seed: UInt64 = 0xC4A5_0001
        var random = TestSupport.SplitMix64(seed: seed)
        let directory = TemporaryDirectory()
        var model = ModelLog(state: .bootstrap(voters: voters))
        var checkpoints: [(String, PersistentState)] = []
        let (log, _) = try WriteAheadLog.open(directory: directory.wal, configuration: smallConfiguration, initialState: model.state)
        var term: UInt64 = 1
        for step in 0..<60 {
            let choice = random.next() % 10
            if choice == 0 && model.state.hardState.commitIndex > log.snapshotIndex {
                let index = model.state.hardState.commitIndex
                let termAtIndex = model.state.entries.first { $0.index == index }!.term
                let snapshot = Snapshot(metadata: SnapshotMetadata(index: index, term: termAtIndex, membership: Membership(voters: voters)),
                                        data: [UInt8](repeating: UInt8(step), count: Int(random.next() % 300)))
                try log.compact(through: snapshot)
                model.compact(through: snapshot)
            } else {
                // Sometimes overwrite uncommitted entries, as a follower with a new leader does.
                let committed = model.state.hardState.commitIndex
                var first = log.lastIndex + 1
                if choice < 3 && log.lastIndex > committed { first = committed + 1 + random.next() % (log.lastIndex - committed) }
                if choice < 3 { term += 1 }
                let count = 1 + random.next() % 6
                let newEntries = entries(first...first + count - 1, term: term, bytes: Int(random.next() % 200))
                let commit = min(first + count - 1, committed + random.next() % 4)
                let batch = WriteBatch(entries: newEntries, hardState: HardState(term: term, votedFor: nil, commitIndex: commit))
                try log.append(batch)
                model.apply(batch)
            }
            checkpoints.append((try directory.copyOfLog("crash-\(step)"), model.state))
        }
        log.close()
        for (step, (copy, expected)) in checkpoints.enumerated() {
            let (_, state) = try WriteAheadLog.open(directory: copy, configuration: smallConfiguration)
            #expect(state == expected, "seed \(seed) step \(step)")
            _ = try RaftNode(id: NodeID(1), configuration: try RaftConfiguration(), restoring: state, randomSeed: 1)
        }
    }
}
