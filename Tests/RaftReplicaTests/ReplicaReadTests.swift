import Raft
import Testing

@testable import RaftReplica

/// `RaftReplica.readBarrier`: ReadIndex (thesis §6.4) through the replica's loop.
@Suite("Read barriers on loopback replicas")
struct ReplicaReadTests {
    @Test func aBarrierOnTheLeaderCoversEveryAcknowledgedWriteAndAFollowerRefuses() async throws {
        let cluster = LoopbackCluster()
        try await cluster.start()
        do {
            var last: AppliedProposal?
            for number in 1...5 { last = try await proposeOnLeader(command(number), among: Array(cluster.replicas.values)) }
            let leader = try await cluster.agreedLeader()
            let index = try await leader.readBarrier()
            #expect(index >= last!.index)
            // What the barrier promises: the state machine already holds every acknowledged write.
            let appliedHere = cluster.applied[leader.configuration.id]!.all
            #expect(appliedHere.suffix(5) == (1...5).map(command))
            let follower = cluster.replicas.values.first { $0.configuration.id != leader.configuration.id }!
            await #expect(throws: ProposalError.notLeader(leaderID: leader.configuration.id)) {
                try await follower.readBarrier()
            }
        } catch {
            try await cluster.shutdown()
            throw error
        }
        try await cluster.shutdown()
    }

    /// A leader whose followers are gone still has the leader role for a while (until check
    /// quorum deposes it); a barrier there must fail, never answer from a state that a newer
    /// leader elsewhere could have overtaken.
    @Test func aLeaderCutOffFromItsMajorityConfirmsNoRead() async throws {
        let cluster = LoopbackCluster()
        try await cluster.start()
        do {
            _ = try await proposeOnLeader(command(1), among: Array(cluster.replicas.values))
            let leader = try await cluster.agreedLeader()
            for id in cluster.ids where id != leader.configuration.id { try await cluster.stop(id) }
            var outcomes: [String] = []
            for _ in 0..<3 {
                do {
                    let index = try await leader.readBarrier()
                    outcomes.append("confirmed at \(index)")
                } catch .readNotConfirmed {
                    outcomes.append("not confirmed")
                } catch .notLeader {
                    outcomes.append("not leader")
                }
            }
            #expect(!outcomes.contains { $0.hasPrefix("confirmed") }, "\(outcomes)")
            #expect(outcomes.count == 3)
        } catch {
            try await cluster.shutdown()
            throw error
        }
        try await cluster.shutdown()
    }
}
