import ClusterCertificates
import Logging
import NIOCore
import NIOPosix
import Raft
import RaftReplica
import Registry
import Storage
import Transport

/// A peer's Raft replica and the registry it applies to.
///
/// Every peer runs one. The founding voters bootstrap the cluster from the configuration; any
/// other peer starts as a replica outside the configuration, which does nothing until the
/// leader adds it as a learner (to replace a dead voter) and later promotes it. A restarted peer
/// recovers its place (voter, learner or none) from its own log.
///
/// Raft node ids are derived from the peers' Raft addresses (`NodeIdentity.nodeID`), so every
/// founding voter can name all the others from the configuration alone, before any of them
/// answers, and any peer can name any other from membership's addresses.
final class Voter: Sendable {
    let replica: RaftReplica
    let registry: RegistryStore
    let nodeID: NodeID
    /// Raft node id -> the voter's public IP (for forwarding to the leader's peer API).
    let voterAddresses: [NodeID: String]
    private let raftGroup: MultiThreadedEventLoopGroup

    private init(replica: RaftReplica, registry: RegistryStore, nodeID: NodeID, voterAddresses: [NodeID: String],
                 raftGroup: MultiThreadedEventLoopGroup) {
        self.replica = replica
        self.registry = registry
        self.nodeID = nodeID
        self.voterAddresses = voterAddresses
        self.raftGroup = raftGroup
    }

    static func start(configuration: DaemonConfiguration, peerTLS: PeerTLS?, registry: RegistryStore, ioGroup: any EventLoopGroup,
                      logger: Logger) async throws -> Voter {
        let addresses = Dictionary(uniqueKeysWithValues: configuration.effectiveVoters.map {
            (NodeIdentity.nodeID(ip: $0, raftPort: configuration.raftPort), $0)
        })
        let localID = NodeIdentity.nodeID(ip: configuration.publicIP, raftPort: configuration.raftPort)
        // Every byte bound derives from the unit-file size, so no step refuses what the one before accepted.
        let limits = ClusterLimits.standard
        let raft = try limits.raftConfiguration(electionTimeoutTicks: configuration.raftElectionTicks)
        let replicaConfiguration = try ReplicaConfiguration(
            id: localID, foundingVoters: configuration.isFoundingVoter ? addresses.keys.sorted() : [],
            dataDirectory: configuration.dataDirectory + "/raft",
            raft: raft, writeAheadLog: limits.writeAheadLog,
            tickInterval: .milliseconds(configuration.raftTickMilliseconds),
            randomSeed: localID.rawValue &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(UInt32(truncatingIfNeeded: getpid())),
            snapshotEveryEntries: configuration.raftSnapshotEntries)
        var peers: [NodeID: PeerAddress] = [:]
        for (id, ip) in addresses where id != localID { peers[id] = PeerAddress(host: ip, port: configuration.raftPort) }
        var transportConfiguration = try TransportConfiguration(
            localID: localID, listenAddress: PeerAddress(host: configuration.publicIP, port: configuration.raftPort), peers: peers,
            frameBytesMax: limits.transportFrameBytesMax,
            reconnectDelayMin: .milliseconds(20), reconnectDelayMax: .milliseconds(500), jitterSeed: localID.rawValue)
        transportConfiguration.tls = PeerTLSFiles.transportTLS(peerTLS, raftPort: configuration.raftPort)
        // Raft gets a thread of its own: it blocks in fsync, and nothing else may wait behind it.
        let raftGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let replica: RaftReplica
        do {
            replica = try await RaftReplica.start(
                configuration: replicaConfiguration, transportConfiguration: transportConfiguration,
                eventLoop: raftGroup.next(), transportEventLoop: ioGroup.next(), logger: logger,
                stateMachine: StateMachine(apply: { registry.apply($0) }, restore: { try registry.restore($0.data) },
                                           snapshot: { registry.snapshot() }))
        } catch {
            try? await raftGroup.shutdownGracefully()
            throw error
        }
        return Voter(replica: replica, registry: registry, nodeID: localID, voterAddresses: addresses, raftGroup: raftGroup)
    }

    /// Proposes `command` and waits until it is applied here; the registry's answer.
    func propose(_ command: RegistryCommand) async throws(ProposalError) -> RegistryResult {
        let applied = try await replica.propose(command.encoded())
        guard let result = try? RegistryResult.decode(applied.result) else {
            // An empty answer: the entry was applied but not as a command (cannot happen for
            // bytes we encoded ourselves, unless the log was written by another version).
            return .rejected(.invalidUnitFile("?", reason: "the replica could not decode the command it applied"))
        }
        return result
    }

    /// See `RaftReplica.readBarrier`: afterwards this replica's registry is at least as new as
    /// every write acknowledged before the call.
    func readBarrier() async throws(ProposalError) {
        _ = try await replica.readBarrier()
    }

    func stop() async {
        await replica.stop()
        try? await raftGroup.shutdownGracefully()
    }
}

enum NodeIdentity {
    /// FNV-1a (64-bit) of "ip:port", never 0 (Raft reserves node id 0).
    static func nodeID(ip: String, raftPort: Int) -> NodeID {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(ip):\(raftPort)".utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return NodeID(hash == 0 ? 1 : hash)
    }
}
