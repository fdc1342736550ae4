import TestSupport
import Foundation
import Raft
import Testing
import Wire
@testable import Storage

@Suite(.onBackgroundThreads) struct WriteAheadLogTests {
    @Test func freshDirectoryStartsFromTheInitialStateAndRestartsToIt() throws {
        let directory = TemporaryDirectory()
        let bootstrap = PersistentState.bootstrap(voters: voters)
        do {
            let (_, state) = try WriteAheadLog.open(directory: directory.wal, initialState: bootstrap)
            #expect(state == bootstrap)
        }
        let (_, reopened) = try WriteAheadLog.open(directory: directory.wal, initialState: .joining())
        #expect(reopened == bootstrap)
        // And the core accepts what the log recovered.
        _ = try RaftNode(id: NodeID(1), configuration: try RaftConfiguration(), restoring: reopened, randomSeed: 1)
    }

    /// A server can also start from a snapshot (restored from a backup, say): file and entries
    /// after it are written before `open` returns.
    @Test func anInitialStateWithASnapshotIsWrittenWhole() throws {
        let directory = TemporaryDirectory()
        let initial = PersistentState(
            hardState: HardState(term: 3, votedFor: NodeID(2), commitIndex: 10),
            snapshot: Snapshot(metadata: SnapshotMetadata(index: 10, term: 3, membership: Membership(voters: voters)), data: [1, 2, 3]),
            entries: entries(11...12, term: 3))
        do {
            let (log, state) = try WriteAheadLog.open(directory: directory.wal, initialState: initial)
            #expect(state == initial)
            #expect(log.lastIndex == 12 && log.snapshotIndex == 10)
        }
        let (_, reopened) = try WriteAheadLog.open(directory: directory.wal)
        #expect(reopened == initial)
    }

    @Test func appendedBatchesSurviveARestart() throws {
        let directory = TemporaryDirectory()
        var model = ModelLog(state: .bootstrap(voters: voters))
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory.wal, initialState: model.state)
            for term in UInt64(2)...6 {
                let first = log.lastIndex + 1
                let batch = WriteBatch(entries: entries(first...first + 9, term: term),
                                       hardState: HardState(term: term, votedFor: NodeID(2), commitIndex: first + 4))
                try log.append(batch)
                model.apply(batch)
            }
            #expect(log.syncCount == 5, "one sync per batch (group commit)")
        }
        let (log, state) = try WriteAheadLog.open(directory: directory.wal)
        #expect(state == model.state)
        #expect(log.lastIndex == 51)
        _ = try RaftNode(id: NodeID(1), configuration: try RaftConfiguration(), restoring: state, randomSeed: 1)
    }

    /// Raft's Figure 2 lists `commitIndex` under "Volatile state on all servers": a batch that
    /// only raises it is written but not synced, while a change of term or vote always is.
    @Test func aCommitIndexOnlyBatchIsWrittenWithoutASync() throws {
        let directory = TemporaryDirectory()
        var model = ModelLog(state: .bootstrap(voters: voters))
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory.wal, initialState: model.state)
            let withEntries = WriteBatch(entries: entries(2...5, term: 2),
                                         hardState: HardState(term: 2, votedFor: NodeID(2), commitIndex: 1))
            try log.append(withEntries)
            model.apply(withEntries)
            let synced = log.syncCount

            let commitOnly = WriteBatch(hardState: HardState(term: 2, votedFor: NodeID(2), commitIndex: 5))
            try log.append(commitOnly)
            model.apply(commitOnly)
            #expect(log.syncCount == synced, "a commit-index-only batch was synced")

            let newVote = WriteBatch(hardState: HardState(term: 2, votedFor: NodeID(3), commitIndex: 5))
            try log.append(newVote)
            model.apply(newVote)
            #expect(log.syncCount == synced + 1, "a change of vote was not synced")

            let newTerm = WriteBatch(hardState: HardState(term: 3, votedFor: NodeID(3), commitIndex: 5))
            try log.append(newTerm)
            model.apply(newTerm)
            #expect(log.syncCount == synced + 2, "a change of term was not synced")
        }
        // Without a crash the unsynced record is read back like any other.
        let (_, state) = try WriteAheadLog.open(directory: directory.wal)
        #expect(state == model.state)
    }

    /// A crash may lose an unsynced commit-index record, never a synced batch before it.
    @Test func aTornCommitIndexOnlyBatchIsCutAndTheSyncedStateRemains() throws {
        let directory = TemporaryDirectory()
        var model = ModelLog(state: .bootstrap(voters: voters))
        let segment: String
        let syncedBytes: Int
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory.wal, initialState: model.state)
            let withEntries = WriteBatch(entries: entries(2...5, term: 2),
                                         hardState: HardState(term: 2, votedFor: NodeID(2), commitIndex: 1))
            try log.append(withEntries)
            model.apply(withEntries)
            segment = segmentPaths(in: directory.wal).last!
            syncedBytes = readBytes(segment).count
            try log.append(WriteBatch(hardState: HardState(term: 2, votedFor: NodeID(2), commitIndex: 5)))
        }
        let full = readBytes(segment)
        #expect(full.count > syncedBytes)
        // The page holding the unsynced record reached the disk only in part.
        writeBytes(segment, Array(full[..<(syncedBytes + (full.count - syncedBytes) / 2)]))
        let (_, state) = try WriteAheadLog.open(directory: directory.wal)
        #expect(state == model.state)
        #expect(state.hardState.commitIndex == 1)
    }

    @Test func conflictingEntriesAreOverwritten() throws {
        let directory = TemporaryDirectory()
        var model = ModelLog(state: .bootstrap(voters: voters))
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory.wal, initialState: model.state)
            for batch in [
                WriteBatch(entries: entries(2...10, term: 2), hardState: HardState(term: 2, commitIndex: 3)),
                WriteBatch(entries: entries(6...8, term: 3), hardState: HardState(term: 3, commitIndex: 5)),
                WriteBatch(entries: entries(8...9, term: 4), hardState: HardState(term: 4, commitIndex: 5)),
            ] {
                try log.append(batch)
                model.apply(batch)
            }
            #expect(log.lastIndex == 9)
        }
        let (_, state) = try WriteAheadLog.open(directory: directory.wal)
        #expect(state == model.state)
        #expect(state.entries.map(\.term) == [1, 2, 2, 2, 2, 3, 3, 4, 4])
    }

    @Test func aSecondOwnerIsRefused() throws {
        let directory = TemporaryDirectory()
        let (log, _) = try WriteAheadLog.open(directory: directory.wal)
        #expect(throws: StorageError.directoryLocked(path: directory.wal)) {
            _ = try WriteAheadLog.open(directory: directory.wal)
        }
        log.close()
        _ = try WriteAheadLog.open(directory: directory.wal)
    }

    @Test func segmentsRollOverWithinTheirBound() throws {
        let directory = TemporaryDirectory()
        var model = ModelLog(state: .bootstrap(voters: voters))
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory.wal, configuration: smallConfiguration, initialState: model.state)
            for _ in 0..<40 {
                let first = log.lastIndex + 1
                let batch = WriteBatch(entries: entries(first...first + 2, term: 1, bytes: 100),
                                       hardState: HardState(term: 1, commitIndex: first))
                try log.append(batch)
                model.apply(batch)
            }
            #expect(log.segmentNames.count > 3)
        }
        for segment in segmentPaths(in: directory.wal) {
            #expect(readBytes(segment).count <= smallConfiguration.segmentBytesMax)
        }
        let (_, state) = try WriteAheadLog.open(directory: directory.wal, configuration: smallConfiguration)
        #expect(state == model.state)
    }

    @Test func oversizeEntryAndBatchAreTypedErrorsAndLeaveTheLogUsable() throws {
        let directory = TemporaryDirectory()
        let (log, _) = try WriteAheadLog.open(directory: directory.wal, configuration: smallConfiguration,
                                              initialState: .bootstrap(voters: voters))
        #expect(throws: StorageError.self) { try log.append(WriteBatch(entries: [entry(2, term: 1, bytes: 2000)])) }
        let many = entries(2...60, term: 1, bytes: 100)
        #expect(throws: StorageError.self) { try log.append(WriteBatch(entries: many)) }
        try log.append(WriteBatch(entries: entries(2...3, term: 1)))
        #expect(log.lastIndex == 3)
    }
}

@Suite(.onBackgroundThreads) struct SnapshotTests {
    @Test func compactionRemovesCoveredSegmentsAndSurvivesARestart() throws {
        let directory = TemporaryDirectory()
        var model = ModelLog(state: .bootstrap(voters: voters))
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory.wal, configuration: smallConfiguration, initialState: model.state)
            for _ in 0..<30 {
                let first = log.lastIndex + 1
                let batch = WriteBatch(entries: entries(first...first + 2, term: 2, bytes: 100),
                                       hardState: HardState(term: 2, commitIndex: first + 2))
                try log.append(batch)
                model.apply(batch)
            }
            let segmentsBefore = log.segmentNames.count
            let snapshot = Snapshot(metadata: SnapshotMetadata(index: 70, term: 2, membership: Membership(voters: voters)),
                                    data: Array("state machine at 70".utf8))
            try log.compact(through: snapshot)
            model.compact(through: snapshot)
            #expect(log.segmentNames.count < segmentsBefore)
            #expect(log.cleanupFailure == nil)
            // A newer snapshot replaces the older file.
            let newer = Snapshot(metadata: SnapshotMetadata(index: 80, term: 2, membership: Membership(voters: voters)),
                                 data: Array("state machine at 80".utf8))
            try log.compact(through: newer)
            model.compact(through: newer)
            #expect(files(in: directory.wal).filter { $0.hasPrefix("snap-") } == [SnapshotFile.name(index: 80, term: 2)])
        }
        let (_, state) = try WriteAheadLog.open(directory: directory.wal, configuration: smallConfiguration)
        #expect(state == model.state)
        #expect(state.entries.first?.index == 81)
        _ = try RaftNode(id: NodeID(1), configuration: try RaftConfiguration(), restoring: state, randomSeed: 1)
    }

    @Test func aSnapshotFromTheLeaderReplacesTheLog() throws {
        let directory = TemporaryDirectory()
        var model = ModelLog(state: .bootstrap(voters: voters))
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory.wal, configuration: smallConfiguration, initialState: model.state)
            var batches = [WriteBatch(entries: entries(2...20, term: 2, bytes: 50), hardState: HardState(term: 2, commitIndex: 5))]
            let snapshot = Snapshot(metadata: SnapshotMetadata(index: 100, term: 4, membership: Membership(voters: voters)),
                                    data: [1, 2, 3])
            batches.append(WriteBatch(snapshot: snapshot, entries: entries(101...103, term: 4),
                                      hardState: HardState(term: 4, commitIndex: 100)))
            batches.append(WriteBatch(entries: entries(104...105, term: 4)))
            for batch in batches {
                try log.append(batch)
                model.apply(batch)
            }
        }
        let (_, state) = try WriteAheadLog.open(directory: directory.wal, configuration: smallConfiguration)
        #expect(state == model.state)
        #expect(state.entries.map(\.index) == [101, 102, 103, 104, 105])
    }

    @Test func aMissingSnapshotFileIsATypedError() throws {
        let directory = TemporaryDirectory()
        do {
            let (log, _) = try WriteAheadLog.open(directory: directory.wal, initialState: .bootstrap(voters: voters))
            try log.append(WriteBatch(entries: entries(2...5, term: 1), hardState: HardState(term: 1, commitIndex: 5)))
            try log.compact(through: Snapshot(metadata: SnapshotMetadata(index: 4, term: 1, membership: Membership(voters: voters)), data: [9]))
        }
        try FileManager.default.removeItem(atPath: directory.wal + "/" + SnapshotFile.name(index: 4, term: 1))
        #expect(throws: StorageError.missingSnapshot(index: 4, term: 1)) { _ = try WriteAheadLog.open(directory: directory.wal) }
    }
}
