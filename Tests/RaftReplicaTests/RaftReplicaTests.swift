import Foundation
import Logging
import NIOCore
import NIOPosix
import Raft
import Storage
import Locking
import Testing
import TestSupport
import Transport

@testable import RaftReplica

/// A state machine that records the commands it applies, readable from the test. Its snapshot
/// is the list of commands (each length-prefixed), so a restored replica holds the same list.
final class AppliedCommands: Sendable {
    let commands = Locked<[[UInt8]]>([])
    /// The index of every snapshot `restore` was given, in order.
    let restoredSnapshotIndexes = Locked<[UInt64]>([])

    /// A state machine that cannot take snapshots (as one of another version might not): every
    /// `restore` throws and changes nothing.
    let refusesRestores: Bool

    init(refusesRestores: Bool = false) {
        self.refusesRestores = refusesRestores
    }

    struct RestoreRefused: Error {}

    var all: [[UInt8]] { commands.withLock { $0 } }
    var restores: [UInt64] { restoredSnapshotIndexes.withLock { $0 } }

    func stateMachine() -> StateMachine {
        StateMachine(
            apply: { entry in
                guard case .command(let data, _) = entry.payload else { return [] }
                self.commands.withLock { $0.append(data) }
                return Array(data.reversed())
            },
            restore: { snapshot in
                if self.refusesRestores { throw RestoreRefused() }
                self.commands.withLock { $0 = Self.decode(snapshot.data) }
                self.restoredSnapshotIndexes.withLock { $0.append(snapshot.metadata.index) }
            },
            snapshot: { Self.encode(self.all) })
    }

    static func encode(_ commands: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = []
        for command in commands {
            withUnsafeBytes(of: UInt32(command.count).littleEndian) { bytes += $0 }
            bytes += command
        }
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> [[UInt8]] {
        var commands: [[UInt8]] = []
        var offset = 0
        while offset + 4 <= bytes.count {
            let count = (0..<4).reduce(0) { $0 | Int(bytes[offset + $1]) << ($1 * 8) }
            precondition(offset + 4 + count <= bytes.count, "snapshot data cut inside a command")
            commands.append(Array(bytes[(offset + 4)..<(offset + 4 + count)]))
            offset += 4 + count
        }
        precondition(offset == bytes.count, "snapshot data with \(bytes.count - offset) stray bytes")
        return commands
    }
}

/// Polls `condition` until it holds. The bound only catches hangs: CPU-bound suites elsewhere may
/// hold the 2-thread cooperative pool for a long time.
func eventually(timeout: Duration = .seconds(90), _ what: String, _ condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("timed out after \(timeout) waiting for: \(what)")
    throw CancellationError()
}

/// Replicas in this process, each with its own Raft loop and its own data directory; three
/// founding voters unless told otherwise, and any number that join later.
final class LoopbackCluster {
    let ids: [NodeID]
    let root: String
    let snapshotEveryEntries: Int?
    let writeAheadLog: WriteAheadLogConfiguration
    let raft: RaftConfiguration
    let transportGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var raftGroups: [NodeID: MultiThreadedEventLoopGroup] = [:]
    var replicas: [NodeID: RaftReplica] = [:]
    var applied: [NodeID: AppliedCommands] = [:]
    var ports: [NodeID: Int] = [:]
    /// Replicas started with no founding voters (they join through `addLearner`).
    var joiners: Set<NodeID> = []
    /// Replicas whose state machine refuses every snapshot (`AppliedCommands.refusesRestores`).
    var refusingRestores: Set<NodeID> = []

    init(ids: [NodeID] = [NodeID(1), NodeID(2), NodeID(3)], snapshotEveryEntries: Int? = nil,
         writeAheadLog: WriteAheadLogConfiguration = WriteAheadLogConfiguration(),
         // 300-600 ms election timeouts: long enough that a starved test host does not depose
         // leaders at random, short enough to keep the test quick.
         raft: RaftConfiguration = try! RaftConfiguration(electionTimeoutTicks: 30, heartbeatIntervalTicks: 1)) {
        self.ids = ids
        self.snapshotEveryEntries = snapshotEveryEntries
        self.writeAheadLog = writeAheadLog
        self.raft = raft
        root = FileManager.default.temporaryDirectory.appendingPathComponent("raft-replica-\(UUID().uuidString)").path
    }

    func start() async throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for id in ids { try await start(id, port: try LoopbackPorts.reserve(), peers: [:]) }
        for id in ids {
            for other in ids where other != id {
                replicas[id]!.transport.setPeer(other, address: address(of: other))
            }
        }
    }

    func address(of id: NodeID) -> PeerAddress { PeerAddress(host: "127.0.0.1", port: ports[id]!) }

    func directory(of id: NodeID) -> String { "\(root)/\(id)" }

    /// Starts `id` with no log, knowing the running replicas' addresses, to be added by the leader.
    func startJoining(_ id: NodeID) async throws {
        joiners.insert(id)
        let peers = Dictionary(uniqueKeysWithValues: replicas.keys.map { ($0, address(of: $0)) })
        try await start(id, port: try LoopbackPorts.reserve(), peers: peers)
    }

    func start(_ id: NodeID, port: Int, peers: [NodeID: PeerAddress]) async throws {
        let configuration = try ReplicaConfiguration(
            id: id, foundingVoters: joiners.contains(id) ? [] : ids, dataDirectory: directory(of: id), raft: raft,
            writeAheadLog: writeAheadLog, tickInterval: .milliseconds(10), randomSeed: id.rawValue &* 7919,
            snapshotEveryEntries: snapshotEveryEntries)
        let transportConfiguration = try TransportConfiguration(
            localID: id, listenAddress: PeerAddress(host: "127.0.0.1", port: port), peers: peers,
            reconnectDelayMin: .milliseconds(5), reconnectDelayMax: .milliseconds(200), jitterSeed: id.rawValue)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let commands = AppliedCommands(refusesRestores: refusingRestores.contains(id))
        let replica: RaftReplica
        do {
            replica = try await RaftReplica.start(
                configuration: configuration, transportConfiguration: transportConfiguration,
                eventLoop: group.next(), transportEventLoop: transportGroup.next(),
                logger: Logger(label: "replica-\(id)"), stateMachine: commands.stateMachine())
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        raftGroups[id] = group
        replicas[id] = replica
        applied[id] = commands
        ports[id] = replica.transport.listenPort
    }

    /// Restarts `id` on its old port and directory; it knows the address of every replica that
    /// ever ran in this cluster.
    func restart(_ id: NodeID) async throws {
        let peers = Dictionary(uniqueKeysWithValues: ports.keys.filter { $0 != id }.map { ($0, address(of: $0)) })
        try await start(id, port: ports[id]!, peers: peers)
    }

    func stop(_ id: NodeID) async throws {
        guard let replica = replicas.removeValue(forKey: id) else { return }
        await replica.stop()
        try await raftGroups.removeValue(forKey: id)!.shutdownGracefully()
    }

    /// The single leader among the running replicas that all of them agree on.
    func agreedLeader() async throws -> RaftReplica {
        try await waitForLeader(among: Array(replicas.values))
    }

    func shutdown() async throws {
        for id in Array(replicas.keys) { try await stop(id) }
        try await transportGroup.shutdownGracefully()
    }
}

func command(_ number: Int) -> [UInt8] { Array("command-\(number)".utf8) }

/// The single leader among `replicas` that all of them agree on.
func leader(among replicas: [RaftReplica]) async -> RaftReplica? {
    var statuses: [ReplicaStatus] = []
    for replica in replicas {
        guard let status = await replica.status() else { return nil }
        statuses.append(status)
    }
    let leaders = statuses.filter { $0.role == .leader }
    guard leaders.count == 1, let leader = leaders.first,
          statuses.allSatisfy({ $0.leaderID == leader.id && $0.term == leader.term }) else { return nil }
    return replicas.first { $0.configuration.id == leader.id }
}

func waitForLeader(among replicas: [RaftReplica]) async throws -> RaftReplica {
    var found: RaftReplica?
    try await eventually("one leader that every running replica follows") {
        found = await leader(among: replicas)
        return found != nil
    }
    return found!
}

/// Proposes on whichever of `replicas` leads, retrying when leadership moves meanwhile
/// (`notLeader` and `superseded` both mean the command was not applied, so a retry cannot
/// duplicate it).
func proposeOnLeader(_ data: [UInt8], among replicas: [RaftReplica]) async throws -> AppliedProposal {
    var lastError = ProposalError.notLeader(leaderID: nil)
    for _ in 0..<20 {
        let leader = try await waitForLeader(among: replicas)
        do {
            return try await leader.propose(data)
        } catch .notLeader, .superseded {
            continue
        } catch {
            lastError = error
            break
        }
    }
    throw lastError
}

@Suite("Raft replicas on loopback with real write-ahead logs")
struct RaftReplicaTests {
    @Test func threeReplicasElectCommitSurviveTheLeadersStopAndRecoverFromDisk() async throws {
        let cluster = LoopbackCluster()
        try await cluster.start()
        do {
            _ = try await cluster.agreedLeader()

            // Concurrent proposals share fsyncs; each is answered when applied, with the state
            // machine's result.
            let running = Array(cluster.replicas.values)
            let results = try await withThrowingTaskGroup(of: AppliedProposal.self) { group in
                for number in 0..<50 { group.addTask { try await proposeOnLeader(command(number), among: running) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.count == 50)
            #expect(Set(results.map(\.index)).count == 50)
            #expect(results.allSatisfy { Array($0.result.reversed()).starts(with: Array("command-".utf8)) })

            let leading = try await cluster.agreedLeader()
            let follower = cluster.replicas.values.first { $0 !== leading }!
            await #expect(throws: ProposalError.notLeader(leaderID: leading.configuration.id)) {
                try await follower.propose(command(-1))
            }
            try await eventually("every replica applied the 50 commands") {
                cluster.applied.values.allSatisfy { $0.all.count == 50 }
            }

            // The leader stops; the other two elect a new one and keep committing.
            let stoppedID = leading.configuration.id
            let committedBeforeStop = await leading.logEntries()
            try await cluster.stop(stoppedID)
            let second = try await cluster.agreedLeader()
            #expect(second.configuration.id != stoppedID)
            let survivors = Array(cluster.replicas.values)
            for number in 50..<70 { _ = try await proposeOnLeader(command(number), among: survivors) }

            // The stopped replica restarts from its directory: what it had is still there, and it
            // catches up with what was committed without it.
            try await cluster.restart(stoppedID)
            let restarted = cluster.replicas[stoppedID]!
            let recovered = await restarted.logEntries()
            #expect(Array(recovered.prefix(committedBeforeStop.count)) == committedBeforeStop)
            try await eventually("the restarted replica applied all 70 commands") {
                cluster.applied[stoppedID]!.all.count == 70
            }
            try await eventually("all three logs are equal") {
                var logs: [[Entry]] = []
                for id in cluster.ids { logs.append(await cluster.replicas[id]!.logEntries()) }
                return logs[0] == logs[1] && logs[1] == logs[2]
            }
            let expected = (0..<70).map(command)
            #expect(Set(cluster.applied[stoppedID]!.all) == Set(expected))
            #expect(cluster.applied[stoppedID]!.all == cluster.applied[second.configuration.id]!.all)

            // Finally, every directory recovers that log from disk. The replicas stop one after
            // the other, so the last ones may elect a leader meanwhile (a starved host delays a
            // stop past the 300 ms election timeout) and append that term's empty entry: a
            // directory may hold more than `inMemory`, but only such entries of later terms (not
            // committed, so two directories may even disagree on them).
            let inMemory = await second.logEntries()
            let lastTerm = inMemory.last!.term
            try await cluster.shutdown()
            for id in cluster.ids {
                let (log, state) = try WriteAheadLog.open(directory: "\(cluster.root)/\(id)")
                log.close()
                #expect(Array(state.entries.prefix(inMemory.count)) == inMemory, "replica \(id) recovered a different log")
                #expect(state.entries.dropFirst(inMemory.count).allSatisfy { $0.term > lastTerm && $0.payload == .empty },
                        "replica \(id) recovered entries after the agreed log that no election wrote")
            }
        } catch {
            try? await cluster.shutdown()
            try? FileManager.default.removeItem(atPath: cluster.root)
            throw error
        }
        try? FileManager.default.removeItem(atPath: cluster.root)
    }
}

@Suite("One replica on its own")
struct SingleReplicaTests {
    func startAlone(root: String, group: any EventLoopGroup, pendingProposalsMax: Int = 1024) async throws -> (RaftReplica, AppliedCommands) {
        let commands = AppliedCommands()
        let configuration = try ReplicaConfiguration(
            id: NodeID(1), foundingVoters: [NodeID(1)], dataDirectory: root,
            raft: try RaftConfiguration(electionTimeoutTicks: 5, heartbeatIntervalTicks: 1),
            pendingProposalsMax: pendingProposalsMax, randomSeed: 1)
        let replica = try await RaftReplica.start(
            configuration: configuration,
            transportConfiguration: try TransportConfiguration(
                localID: NodeID(1), listenAddress: PeerAddress(host: "127.0.0.1", port: 0), peers: [:]),
            eventLoop: group.next(), transportEventLoop: group.next(), logger: Logger(label: "alone"),
            stateMachine: commands.stateMachine())
        return (replica, commands)
    }

    @Test func aSingleVoterCommitsAndAnswersWithTheStateMachinesResult() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("raft-alone-\(UUID().uuidString)").path
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (replica, commands) = try await startAlone(root: root, group: group)
        var applied: AppliedProposal?
        try await eventually("the single voter elects itself and applies") {
            applied = try? await replica.propose(Array("abc".utf8))
            return applied != nil
        }
        #expect(applied?.result == Array("cba".utf8))
        #expect(commands.all == [Array("abc".utf8)])
        await replica.stop()
        await #expect(throws: ProposalError.stopped) { try await replica.propose([1]) }
        try await group.shutdownGracefully()
        await #expect(throws: ProposalError.stopped) { try await replica.propose([2]) }
    }

    @Test func aSecondReplicaOnTheSameDirectoryIsRefusedWithATypedError() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("raft-alone-\(UUID().uuidString)").path
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (replica, _) = try await startAlone(root: root, group: group)
        await #expect(throws: ReplicaError.storage(.directoryLocked(path: root))) {
            _ = try await startAlone(root: root, group: group)
        }
        await replica.stop()
        try await group.shutdownGracefully()
    }
}

