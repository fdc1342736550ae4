import Foundation
import Raft
import Testing
import Transport

@testable import RaftReplica

/// Membership changes and leadership transfer through the replica's API, with real replicas: the
/// path Flotilla's daemon takes to replace a dead voter with a healthy machine.
@Suite("Raft replicas change membership through their API")
struct ReplicaMembershipTests {
    /// Runs `change` on the current leader of `replicas` until it succeeds, retrying the refusals
    /// that only mean "not now": another leader, a leader that has not committed in its term yet,
    /// a change still uncommitted, a learner still catching up, an entry replaced by a new leader.
    /// The bound catches a cluster that never gets there.
    func onLeader(_ what: String, among replicas: [RaftReplica],
                  _ change: (RaftReplica) async throws(ProposalError) -> Void) async throws {
        var lastError: ProposalError?
        for _ in 0..<400 {
            let leader = try await waitForLeader(among: replicas)
            do {
                try await change(leader)
                return
            } catch .notLeader, .superseded, .dropped(.leaderHasNotCommittedInTerm), .dropped(.membershipChangeInProgress),
                    .dropped(.invalidMembershipChange(.learnerNotCaughtUp)) {
                lastError = nil
            } catch {
                lastError = error
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("\(what) did not succeed: \(lastError.map { "\($0)" } ?? "still refused after 400 attempts")")
        throw CancellationError()
    }

    func membership(of replica: RaftReplica) async -> Membership? { await replica.status()?.membership }

    /// What Flotilla's daemon does when a voter's machine dies (Nomad's autopilot): a healthy
    /// machine joins as a learner, is promoted once caught up, and the dead voter is removed.
    @Test func aDeadVoterIsReplacedByALearnerThatJoinsThroughASnapshotAndTheLeaderCanRemoveItself() async throws {
        let cluster = LoopbackCluster(snapshotEveryEntries: 20)
        try await cluster.start()
        defer { try? FileManager.default.removeItem(atPath: cluster.root) }
        do {
            var expected: [[UInt8]] = []
            func commit(_ numbers: Range<Int>, among replicas: [RaftReplica]) async throws {
                for number in numbers {
                    _ = try await proposeOnLeader(command(number), among: replicas)
                    expected.append(command(number))
                }
            }
            try await commit(0..<30, among: Array(cluster.replicas.values))

            // A follower's machine dies.
            let firstLeader = try await cluster.agreedLeader()
            let dead = cluster.ids.first { $0 != firstLeader.configuration.id }!
            try await cluster.stop(dead)
            var alive = cluster.ids.filter { $0 != dead }
            func running() -> [RaftReplica] { alive.map { cluster.replicas[$0]! } }

            // A fourth server starts empty and is added as a learner. The log behind the leader's
            // snapshot is gone, so it can only catch up through InstallSnapshot.
            let newcomer = NodeID(4)
            try await cluster.startJoining(newcomer)
            let address = cluster.address(of: newcomer)
            for id in alive { cluster.replicas[id]!.setPeerAddress(newcomer, address) }
            try await onLeader("addLearner", among: running()) { leader throws(ProposalError) in
                try await leader.addLearner(newcomer, address: address)
            }
            alive.append(newcomer)
            try await eventually("the learner applied the first 30 commands") { cluster.applied[newcomer]!.all == expected }
            #expect(await cluster.replicas[newcomer]!.status()!.snapshotsInstalled >= 1)
            #expect(await membership(of: cluster.replicas[newcomer]!) == Membership(voters: cluster.ids, learners: [newcomer]))

            // Promoted, it makes three live voters of four: a majority again without the dead one.
            try await onLeader("promote", among: running()) { leader throws(ProposalError) in
                try await leader.promote(newcomer)
            }
            var members = cluster.ids + [newcomer]
            for id in alive {
                try await eventually("\(id) sees four voters") {
                    await membership(of: cluster.replicas[id]!) == Membership(voters: members)
                }
            }
            try await commit(30..<40, among: running())

            try await onLeader("removeVoter(\(dead))", among: running()) { leader throws(ProposalError) in
                try await leader.removeVoter(dead)
            }
            members.removeAll { $0 == dead }
            for id in alive {
                try await eventually("\(id) sees \(dead) removed") {
                    await membership(of: cluster.replicas[id]!) == Membership(voters: members)
                }
            }
            try await commit(40..<50, among: running())

            // The leader removes itself: it commits its removal without counting itself, then
            // hands over; the two voters left elect a leader and keep committing.
            var oldLeaderID = newcomer
            try await onLeader("the leader's removeVoter of itself", among: running()) { leader throws(ProposalError) in
                oldLeaderID = leader.configuration.id
                try await leader.removeVoter(leader.configuration.id)
            }
            members.removeAll { $0 == oldLeaderID }
            alive.removeAll { $0 == oldLeaderID }
            let successor = try await waitForLeader(among: running())
            #expect(successor.configuration.id != oldLeaderID)
            #expect(await membership(of: successor) == Membership(voters: members))
            #expect(await cluster.replicas[oldLeaderID]!.status()!.role == .follower)
            try await cluster.stop(oldLeaderID)
            try await commit(50..<60, among: running())
            for id in alive {
                try await eventually("\(id) applied all 60 commands") { cluster.applied[id]!.all == expected }
            }
            try await cluster.shutdown()
        } catch {
            try? await cluster.shutdown()
            throw error
        }
    }

    @Test func leadershipTransfersToTheVoterNamedAndRefusesWithTypedErrors() async throws {
        let cluster = LoopbackCluster()
        try await cluster.start()
        defer { try? FileManager.default.removeItem(atPath: cluster.root) }
        do {
            let replicas = Array(cluster.replicas.values)
            _ = try await proposeOnLeader(command(0), among: replicas)
            let leading = try await waitForLeader(among: replicas)
            let follower = replicas.first { $0 !== leading }!
            let target = follower.configuration.id

            await #expect(throws: LeadershipTransferError.notLeader(leaderID: leading.configuration.id)) {
                try await follower.transferLeadership(to: leading.configuration.id)
            }
            await #expect(throws: LeadershipTransferError.dropped(.transferTargetNotVoter(NodeID(9)))) {
                try await leading.transferLeadership(to: NodeID(9))
            }
            try await leading.transferLeadership(to: leading.configuration.id)

            // The transfer returns once the old leader follows the target, which then commits.
            try await leading.transferLeadership(to: target)
            let status = await leading.status()!
            #expect(status.role == .follower)
            #expect(status.leaderID == target)
            #expect(try await waitForLeader(among: replicas) === follower)
            _ = try await proposeOnLeader(command(1), among: replicas)
            try await eventually("every replica applied both commands") {
                cluster.applied.values.allSatisfy { $0.all == [command(0), command(1)] }
            }

            // A replica that has stopped answers every request with `stopped`.
            let stoppedID = leading.configuration.id
            try await cluster.stop(stoppedID)
            await #expect(throws: LeadershipTransferError.stopped) { try await leading.transferLeadership(to: target) }
            await #expect(throws: ProposalError.stopped) { try await leading.removeVoter(target) }
            try await cluster.shutdown()
        } catch {
            try? await cluster.shutdown()
            throw error
        }
    }

    @Test func aJoiningReplicaNeedsNoFoundingVotersButAFounderMustBeOne() throws {
        let raft = try RaftConfiguration()
        _ = try ReplicaConfiguration(id: NodeID(4), foundingVoters: [], dataDirectory: "/nonexistent", raft: raft, randomSeed: 1)
        #expect(throws: ReplicaError.self) {
            _ = try ReplicaConfiguration(id: NodeID(4), foundingVoters: [NodeID(1)], dataDirectory: "/nonexistent",
                                         raft: raft, randomSeed: 1)
        }
    }
}
