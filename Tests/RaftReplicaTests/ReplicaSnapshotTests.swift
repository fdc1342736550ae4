import Foundation
import Logging
import NIOPosix
import Raft
import Storage
import Testing
import Transport

@testable import RaftReplica

/// Snapshots and log compaction through `ReplicaConfiguration.snapshotEveryEntries`, with real
/// write-ahead logs on disk and real sockets.
@Suite("Raft replicas snapshot their state machines and compact their logs")
struct ReplicaSnapshotTests {
    static let snapshotEveryEntries = 20
    /// Small segments, so that a few hundred commands roll over several of them.
    static let segmentBytesMax = 40 * 1024

    /// Bounds small enough for `segmentBytesMax` (see `ReplicaConfiguration`'s relation between
    /// them), and snapshot chunks small enough that a snapshot takes many InstallSnapshot messages.
    static func makeCluster() throws -> LoopbackCluster {
        let raft = try RaftConfiguration(
            electionTimeoutTicks: 30, heartbeatIntervalTicks: 1, appendEntriesBatchBytesMax: 4096,
            inflightBytesMax: 8192, uncommittedEntriesBytesMax: 8192, entryBytesMax: 1024, snapshotChunkBytesMax: 4096)
        let writeAheadLog = WriteAheadLogConfiguration(segmentBytesMax: segmentBytesMax, recordBytesMax: 4096)
        return LoopbackCluster(snapshotEveryEntries: snapshotEveryEntries, writeAheadLog: writeAheadLog, raft: raft)
    }

    /// A 500-byte command, so that the log outgrows a segment quickly.
    static func bigCommand(_ number: Int) -> [UInt8] {
        let label = command(number)
        return label + [UInt8](repeating: UInt8(ascii: "."), count: 500 - label.count)
    }

    @Test func aStoppedFollowerCatchesUpThroughInstallSnapshotAndCompactedSegmentsAreRemoved() async throws {
        let cluster = try Self.makeCluster()
        try await cluster.start()
        defer { try? FileManager.default.removeItem(atPath: cluster.root) }
        do {
            let leading = try await cluster.agreedLeader()
            for number in 0..<10 { _ = try await proposeOnLeader(Self.bigCommand(number), among: Array(cluster.replicas.values)) }
            let lagging = cluster.replicas.values.first { $0 !== leading }!
            let laggingID = lagging.configuration.id
            try await eventually("the follower applied the first 10 commands") { cluster.applied[laggingID]!.all.count == 10 }
            let lastIndexAtStop = await lagging.status()!.lastIndex
            try await cluster.stop(laggingID)

            // The two others commit past several snapshots; the leader's log no longer holds the
            // entries the stopped follower needs next.
            let running = Array(cluster.replicas.values)
            for number in 10..<200 { _ = try await proposeOnLeader(Self.bigCommand(number), among: running) }
            let leaderStatus = await (try await cluster.agreedLeader()).status()!
            #expect(leaderStatus.snapshotIndex > lastIndexAtStop + 1)
            #expect(leaderStatus.snapshotsTaken >= 190 / Self.snapshotEveryEntries - 1)

            try await cluster.restart(laggingID)
            let expected = (0..<200).map(Self.bigCommand)
            try await eventually("the restarted follower holds all 200 commands") {
                cluster.applied[laggingID]!.all == expected
            }
            let caughtUp = await cluster.replicas[laggingID]!.status()!
            #expect(caughtUp.snapshotsInstalled >= 1, "the follower caught up without InstallSnapshot")
            #expect(cluster.applied[laggingID]!.restores.contains { $0 > lastIndexAtStop },
                    "no snapshot beyond the follower's old log was restored: \(cluster.applied[laggingID]!.restores)")

            // The two replicas that ran throughout rolled over several segments, and every one
            // the snapshots cover is gone: what stays is the newest snapshot and at most the two
            // newest segments (the snapshot may fall inside the one before the current).
            for id in cluster.ids where id != laggingID {
                let files = try WALFiles(directory: cluster.directory(of: id))
                #expect(files.newestSegmentSequence >= 3, "\(id) never rolled over twice: \(files.segments)")
                #expect(files.segments.count <= 2, "\(id) keeps compacted segments: \(files.segments)")
                #expect(files.snapshots.count == 1, "\(id) keeps \(files.snapshots)")
                #expect(files.segmentBytes <= 2 * Self.segmentBytesMax)
            }
            // The follower's directory is bounded too: the installed snapshot replaced its log.
            let laggingFiles = try WALFiles(directory: cluster.directory(of: laggingID))
            #expect(laggingFiles.snapshots.count == 1)
            #expect(laggingFiles.segmentBytes <= 2 * Self.segmentBytesMax)

            // The directories recover what the replicas hold: a snapshot and a short tail.
            try await cluster.shutdown()
            for id in cluster.ids {
                let (log, state) = try WriteAheadLog.open(directory: cluster.directory(of: id), configuration: cluster.writeAheadLog)
                log.close()
                #expect(state.snapshot.metadata.index > lastIndexAtStop)
                #expect(state.entries.count <= 2 * Self.snapshotEveryEntries, "\(id) recovered \(state.entries.count) entries")
                #expect(AppliedCommands.decode(state.snapshot.data) == Array(expected.prefix(AppliedCommands.decode(state.snapshot.data).count)))
            }
        } catch {
            try? await cluster.shutdown()
            throw error
        }
    }

    @Test func aRestartedReplicaRestoresItsSnapshotThenReplaysTheTailAfterIt() async throws {
        let cluster = try Self.makeCluster()
        try await cluster.start()
        defer { try? FileManager.default.removeItem(atPath: cluster.root) }
        do {
            _ = try await cluster.agreedLeader()
            // 47 is not a multiple of the snapshot interval, so a tail follows the last snapshot.
            let expected = (0..<47).map(Self.bigCommand)
            for data in expected { _ = try await proposeOnLeader(data, among: Array(cluster.replicas.values)) }
            try await eventually("every replica applied the 47 commands") {
                cluster.applied.values.allSatisfy { $0.all == expected }
            }
            for id in cluster.ids { try await cluster.stop(id) }

            let restartedID = cluster.ids[0]
            let (log, state) = try WriteAheadLog.open(directory: cluster.directory(of: restartedID), configuration: cluster.writeAheadLog)
            log.close()
            let snapshotIndex = state.snapshot.metadata.index
            #expect(snapshotIndex >= UInt64(Self.snapshotEveryEntries))
            #expect(!state.entries.isEmpty, "no tail after the snapshot at \(snapshotIndex)")

            // Alone, without a leader, it can only rebuild from its own disk: the snapshot, then
            // the committed entries after it.
            try await cluster.restart(restartedID)
            try await eventually("the restarted replica rebuilt all 47 commands") {
                cluster.applied[restartedID]!.all == expected
            }
            #expect(cluster.applied[restartedID]!.restores == [snapshotIndex])
            let status = await cluster.replicas[restartedID]!.status()!
            #expect(status.snapshotIndex == snapshotIndex)
            #expect(status.appliedIndex > snapshotIndex)
            try await cluster.shutdown()
        } catch {
            try? await cluster.shutdown()
            throw error
        }
    }

    @Test func aSnapshotPolicyNeedsAStateMachineThatCanSnapshot() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let configuration = try ReplicaConfiguration(
            id: NodeID(1), foundingVoters: [NodeID(1)], dataDirectory: "/nonexistent", raft: try RaftConfiguration(),
            randomSeed: 1, snapshotEveryEntries: 100)
        await #expect(throws: ReplicaError.invalidConfiguration("snapshotEveryEntries is set but the state machine cannot snapshot")) {
            _ = try await RaftReplica.start(
                configuration: configuration,
                transportConfiguration: try TransportConfiguration(
                    localID: NodeID(1), listenAddress: PeerAddress(host: "127.0.0.1", port: 0), peers: [:]),
                eventLoop: group.next(), transportEventLoop: group.next(), logger: Logger(label: "no-snapshot"),
                stateMachine: StateMachine(apply: { _ in [] }, restore: { _ in }))
        }
        try await group.shutdownGracefully()
    }

    @Test func snapshotPolicyIsValidated() throws {
        let raft = try RaftConfiguration()
        #expect(throws: ReplicaError.invalidConfiguration("snapshotEveryEntries must be positive, is 0")) {
            _ = try ReplicaConfiguration(id: NodeID(1), foundingVoters: [NodeID(1)], dataDirectory: "/nonexistent",
                                         raft: raft, randomSeed: 1, snapshotEveryEntries: 0)
        }
        // A segment must hold the largest Ready the core can hand out.
        #expect(throws: ReplicaError.self) {
            _ = try ReplicaConfiguration(id: NodeID(1), foundingVoters: [NodeID(1)], dataDirectory: "/nonexistent",
                                         raft: raft, writeAheadLog: WriteAheadLogConfiguration(segmentBytesMax: 16 * 1024 * 1024),
                                         randomSeed: 1)
        }
        // A snapshot the core accepts must fit the log's snapshot file.
        #expect(throws: ReplicaError.self) {
            _ = try ReplicaConfiguration(id: NodeID(1), foundingVoters: [NodeID(1)], dataDirectory: "/nonexistent",
                                         raft: raft, writeAheadLog: WriteAheadLogConfiguration(snapshotBytesMax: 1024),
                                         randomSeed: 1)
        }
    }
}

/// The files of a write-ahead log directory (see `WriteAheadLog` for the layout).
struct WALFiles {
    var segments: [String: Int] = [:]
    var snapshots: [String] = []

    init(directory: String) throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            if name.hasPrefix("wal-") && name.hasSuffix(".log") {
                let size = try FileManager.default.attributesOfItem(atPath: directory + "/" + name)[.size] as! NSNumber
                segments[name] = size.intValue
            } else if name.hasPrefix("snap-") && name.hasSuffix(".snap") {
                snapshots.append(name)
            }
        }
    }

    var segmentBytes: Int { segments.values.reduce(0, +) }

    /// `wal-<sequence>-<first index>.log`, hexadecimal.
    var newestSegmentSequence: UInt64 {
        segments.keys.compactMap { UInt64($0.dropFirst(4).prefix(16), radix: 16) }.max() ?? 0
    }
}
