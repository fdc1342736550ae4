@testable import Raft
import TestSupport
import Testing

/// Pre-vote, check-quorum and the leader lease (thesis §9.6, §6.2, §4.2.3).
@Suite(.onBackgroundThreads) struct DisruptionTests {
    let configuration = testConfiguration(preVote: true, checkQuorum: true)

    @Test("thesis §9.6: with pre-vote, \"a candidate only increments its term if it first learns from a majority of the cluster that they would be willing to grant the candidate their votes\"")
    func partitionedServerDoesNotRaiseItsTermOrDisruptOnReturn() {
        var cluster = TestCluster(voters: 3, configuration: configuration)
        cluster.campaign(1)
        let term = cluster[1].term
        cluster.isolate(3)
        cluster.tick(3, times: 100)
        cluster.drain()
        #expect(cluster[3].role == .preCandidate)
        #expect(cluster[3].term == term)
        cluster.healAll()
        cluster.tickAll(times: 5)
        #expect(cluster[1].role == .leader)
        #expect(cluster[1].term == term)
        #expect(cluster[3].role == .follower && cluster[3].leaderID == n(1))
    }

    @Test("thesis §4.2.3: \"if a server receives a RequestVote request within the minimum election timeout of hearing from a current leader, it does not update its term or grant its vote\"")
    func followerWithLiveLeaderIgnoresVoteRequests() {
        var cluster = TestCluster(voters: 3, configuration: configuration)
        cluster.campaign(1)
        let term = cluster[1].term
        let request = VoteRequest(lastLogIndex: 99, lastLogTerm: term, isLeadershipTransfer: false)
        cluster[2].step(Message(from: n(3), to: n(2), term: term + 1, payload: .voteRequest(request)))
        cluster[2].step(Message(from: n(3), to: n(2), term: term + 1, payload: .preVoteRequest(request)))
        #expect(cluster.process(2).isEmpty)
        #expect(cluster[2].term == term)
        #expect(cluster[2].votedFor == n(1))
        // Once the leader has been silent for an election timeout, the request is considered.
        cluster.tick(2, times: 10)
        cluster[2].step(Message(from: n(3), to: n(2), term: term + 1, payload: .preVoteRequest(request)))
        #expect(cluster.process(2).map(\.payload).contains(.preVoteResponse(granted: true)))
    }

    @Test("thesis §6.2: \"a leader steps down if an election timeout elapses without a successful round of heartbeats to a majority of its cluster\"")
    func leaderStepsDownWithoutQuorum() {
        var cluster = TestCluster(voters: 3, configuration: configuration)
        cluster.campaign(1)
        cluster.isolate(1)
        cluster.tick(1, times: 10)
        #expect(cluster[1].role == .leader, "the first window still saw the followers")
        cluster.tick(1, times: 10)
        #expect(cluster[1].role == .follower)
        #expect(cluster[1].leaderID == nil)
    }

    @Test("thesis §6.2: a leader that keeps hearing from a majority stays leader")
    func leaderWithQuorumStaysLeader() {
        var cluster = TestCluster(voters: 3, configuration: configuration)
        cluster.campaign(1)
        cluster.isolate(3)
        cluster.tickAll(times: 50)
        #expect(cluster[1].role == .leader)
    }
}

/// Leadership transfer (thesis §3.10).
@Suite(.onBackgroundThreads) struct LeadershipTransferTests {
    @Test("thesis §3.10: the leader brings the target up to date, then \"sends it a TimeoutNow request ... causing it to start an election\"")
    func transferHandsLeadershipToTarget() {
        var cluster = TestCluster(voters: 3, configuration: testConfiguration(preVote: true, checkQuorum: true))
        cluster.campaign(1)
        cluster.blocked.insert([1, 3])
        _ = cluster[1].propose([1])
        cluster.drain()
        cluster.healAll()
        #expect(cluster[1].transferLeadership(to: n(3)) == .started)
        cluster.drain()
        #expect(cluster[3].role == .leader)
        #expect(cluster[1].role == .follower)
        #expect(cluster[1].leaderID == n(3))
        #expect(cluster[3].entry(at: 3)?.payload == .command(data: [1], stamp: nil))
    }

    @Test("thesis §3.10: during a transfer the leader stops accepting client requests, and it aborts after an election timeout")
    func transferRefusesProposalsThenAbortsAfterTimeout() {
        var cluster = TestCluster(voters: 3)
        cluster.campaign(1)
        cluster.isolate(3)
        #expect(cluster[1].transferLeadership(to: n(3)) == .started)
        #expect(cluster[1].propose([1]) == .dropped(.leadershipTransferInProgress))
        cluster.tick(1, times: 10)
        #expect(cluster[1].leadershipTransferTarget == nil)
        #expect(cluster[1].role == .leader)
        if case .accepted = cluster[1].propose([1]) {} else { Issue.record("proposal refused after the transfer was aborted") }
        #expect(cluster[1].transferLeadership(to: n(9)) == .dropped(.transferTargetNotVoter(n(9))))
        #expect(cluster[2].transferLeadership(to: n(3)) == .notLeader(leaderID: n(1)))
    }
}

/// Log compaction and InstallSnapshot (§7).
@Suite(.onBackgroundThreads) struct SnapshotTests {
    @Test("§7: the leader \"must occasionally send snapshots to followers that lag behind\", in chunks (figure 13)")
    func laggingFollowerCatchesUpThroughChunkedSnapshot() throws {
        var cluster = TestCluster(voters: 3, configuration: testConfiguration(preVote: true, checkQuorum: true, snapshotChunkBytesMax: 4))
        cluster.campaign(1)
        cluster.isolate(3)
        for value: UInt8 in 1...10 { _ = cluster[1].propose([value]) }
        cluster.drain()
        let applied = cluster[1].appliedIndex
        #expect(applied == 12)
        var copy = cluster[1]
        #expect(throws: SnapshotError.notApplied(index: 13, appliedIndex: 12)) {
            try copy.createSnapshot(at: 13, data: [])
        }
        let image: [UInt8] = Array(0..<10)
        let snapshot = try cluster[1].createSnapshot(at: applied, data: image)
        #expect(snapshot.metadata.membership.voters == [n(1), n(2), n(3)])
        #expect(cluster[1].term(at: 5) == nil, "compacted")
        _ = cluster[1].propose([11])
        cluster.healAll()
        cluster.tickAll(times: 5)
        #expect(cluster.persisted[2].snapshot == snapshot)
        #expect(cluster[3].lastIndex == cluster[1].lastIndex)
        #expect(cluster[3].commitIndex == cluster[1].commitIndex)
        let chunks = cluster.delivered.compactMap { if case .installSnapshot(let chunk) = $0.payload { chunk } else { nil } }
        #expect(chunks.count >= 3)
        #expect(chunks.allSatisfy { $0.data.count <= 4 })
        // Only the entry after the snapshot is applied on n3; the state machine came from the image.
        #expect(cluster.applied(3).last?.payload == .command(data: [11], stamp: nil))
        #expect(cluster.applied(3).allSatisfy { $0.index > applied || $0.index <= 2 })
    }
}

/// Single-server membership changes and learners (thesis §4.1, §4.2).
@Suite(.onBackgroundThreads) struct MembershipTests {
    @Test("thesis §4.2.1: a new server joins \"as non-voting members\" and receives the log; it is promoted only once caught up")
    func learnerCatchesUpBeforePromotion() {
        var cluster = TestCluster(voters: 3, joining: 1)
        cluster.campaign(1)
        #expect(cluster[1].proposeMembershipChange(.addLearner(n(4))) == .accepted(index: 3, term: 2))
        // Thesis §4.1: only one change at a time.
        #expect(cluster[1].proposeMembershipChange(.promoteLearner(n(4))) == .dropped(.membershipChangeInProgress(pendingIndex: 3)))
        cluster.isolate(4)
        cluster.drain()
        #expect(cluster[1].membership.learners == [n(4)])
        if case .dropped(.invalidMembershipChange(.learnerNotCaughtUp)) = cluster[1].proposeMembershipChange(.promoteLearner(n(4))) {
        } else { Issue.record("a lagging learner was promoted") }
        cluster.healAll()
        cluster.tickAll(times: 3)
        #expect(cluster[4].lastIndex == cluster[1].lastIndex)
        #expect(cluster[4].membership.learners == [n(4)])
        // A learner never campaigns.
        cluster.tick(4, times: 50)
        #expect(cluster[4].role == .follower)
        #expect(cluster[1].proposeMembershipChange(.promoteLearner(n(4))) == .accepted(index: 4, term: 2))
        cluster.drain()
        cluster.tickAll(times: 2)
        #expect(cluster[4].membership.voters == [n(1), n(2), n(3), n(4)])
        #expect(cluster[1].commitIndex == 4)
    }

    @Test("thesis §4.1: \"a server always uses the latest configuration in its log, regardless of whether the entry is committed\"")
    func configurationTakesEffectWhenAppended() {
        var cluster = TestCluster(voters: 3)
        cluster.campaign(1)
        cluster.blocked.insert([2, 1])
        cluster.blocked.insert([3, 1])
        _ = cluster[1].proposeMembershipChange(.removeNode(n(3)))
        cluster.drain()
        #expect(cluster[1].commitIndex == 2, "the change at 3 is not committed")
        #expect(cluster[1].membership.voters == [n(1), n(2)])
        #expect(cluster[2].membership.voters == [n(1), n(2)])
    }

    @Test("thesis §4.2.2: a leader removed from the configuration \"steps down once the Cnew entry is committed\"; it does not count itself meanwhile")
    func removedLeaderStepsDownAfterCommit() {
        var cluster = TestCluster(voters: 3)
        cluster.campaign(1)
        cluster.isolate(3)
        #expect(cluster[1].proposeMembershipChange(.removeNode(n(1))) == .accepted(index: 3, term: 2))
        #expect(cluster[1].role == .leader)
        cluster.drain()
        // n1 no longer counts itself; n2 alone is not a majority of {n2, n3}.
        #expect(cluster[1].commitIndex == 2)
        #expect(cluster[1].role == .leader)
        cluster.healAll()
        cluster.tickAll(times: 2)
        #expect(cluster[1].role == .follower)
        #expect(cluster[1].membership.voters == [n(2), n(3)])
        // Thesis §3.10: the departing leader hands over with TimeoutNow, without waiting for a timeout.
        #expect([cluster[2].role, cluster[3].role].contains(.leader))
        cluster.tickAll(times: 40)
        #expect([cluster[2].role, cluster[3].role].contains(.leader))
        #expect(cluster[1].role == .follower, "a removed server never campaigns")
    }

    @Test("thesis §4.2.2: a removed server receives the change that removes it, and then never campaigns")
    func removedFollowerLearnsOfItsRemoval() {
        var cluster = TestCluster(voters: 3, configuration: testConfiguration(preVote: true, checkQuorum: true))
        cluster.campaign(1)
        #expect(cluster[1].proposeMembershipChange(.removeNode(n(3))) == .accepted(index: 3, term: 2))
        cluster.drain()
        #expect(cluster[1].commitIndex == 3)
        #expect(cluster[3].membership.voters == [n(1), n(2)])
        #expect(cluster[1].matchIndex(of: n(3)) == nil, "no replication to n3 once the change committed")
        let term = cluster[1].term
        cluster.tick(3, times: 100)
        cluster.drain()
        #expect(cluster[3].role == .follower)
        #expect(cluster[1].role == .leader && cluster[1].term == term)
    }

    @Test("Ongaro's raft-dev erratum: a leader commits an entry of its own term before it changes membership")
    func membershipChangeWaitsForCommitInTerm() {
        var cluster = TestCluster(voters: 3)
        cluster.tick(1, times: cluster[1].randomizedElectionTimeoutTicks)
        let requests = cluster.process(1)
        cluster.deliver(requests.filter { $0.to == n(2) })
        cluster.deliver(cluster.process(2))
        #expect(cluster[1].role == .leader)
        #expect(cluster[1].proposeMembershipChange(.removeNode(n(3))) == .dropped(.leaderHasNotCommittedInTerm))
        #expect(cluster[1].proposeMembershipChange(.removeNode(n(9))) == .dropped(.leaderHasNotCommittedInTerm))
        cluster.drain()
        #expect(cluster[1].proposeMembershipChange(.removeNode(n(9))) == .dropped(.invalidMembershipChange(.notAMember(n(9)))))
    }
}

/// Linearizable reads with ReadIndex (thesis §6.4).
@Suite(.onBackgroundThreads) struct ReadIndexTests {
    @Test("thesis §6.4: the leader records its commit index, confirms leadership with a heartbeat round, then the read may be served once applied ≥ read index")
    func readIsConfirmedByHeartbeatQuorum() {
        var cluster = TestCluster(voters: 3)
        cluster.campaign(1)
        _ = cluster[1].propose([1])
        cluster.drain()
        #expect(cluster[2].readIndex(requestID: 1) == .notLeader(leaderID: n(1)))
        cluster.isolate(1)
        #expect(cluster[1].readIndex(requestID: 7) == .pending)
        cluster.drain()
        #expect(cluster.readStates[0].isEmpty, "without a majority answering, the read is not confirmed")
        cluster.healAll()
        cluster.tickAll(times: 1)
        #expect(cluster.readStates[0] == [ReadState(index: 3, requestID: 7)])
    }

    @Test("thesis §6.4 step 1: a new leader answers reads only after committing an entry of its term")
    func readWaitsForCommitInTerm() {
        var cluster = TestCluster(voters: 3)
        cluster.tick(1, times: cluster[1].randomizedElectionTimeoutTicks)
        let requests = cluster.process(1)
        cluster.deliver(requests.filter { $0.to == n(2) })
        cluster.deliver(cluster.process(2))
        #expect(cluster[1].role == .leader)
        #expect(cluster[1].readIndex(requestID: 5) == .pending)
        #expect(cluster.readStates[0].isEmpty)
        cluster.drain()
        #expect(cluster.readStates[0] == [ReadState(index: 2, requestID: 5)])
    }

    @Test("Reads registered before the next Ready share one heartbeat round")
    func readsInOneBatchShareAHeartbeatRound() {
        var cluster = TestCluster(voters: 3)
        cluster.campaign(1)
        for requestID: UInt64 in 1...5 { _ = cluster[1].readIndex(requestID: requestID) }
        let heartbeats = cluster.process(1).filter { if case .heartbeat = $0.payload { true } else { false } }
        #expect(heartbeats.map(\.to) == [n(2), n(3)])
        cluster.deliver(heartbeats)
        cluster.drain()
        #expect(cluster.readStates[0].map(\.requestID) == [1, 2, 3, 4, 5])
    }

    @Test("thesis §6.4: a read is confirmed only by heartbeats sent after it was registered")
    func readIsNotConfirmedByEarlierHeartbeat() {
        var cluster = TestCluster(voters: 3)
        cluster.campaign(1)
        _ = cluster[1].readIndex(requestID: 1)
        cluster.tick(1)                                // periodic heartbeat: carries read 1's round
        _ = cluster[1].readIndex(requestID: 2)         // registered after those heartbeats left
        let first = cluster.process(1)
        let earlyHeartbeats = first.filter { if case .heartbeat(let heartbeat) = $0.payload { heartbeat.readRound == 1 } else { false } }
        #expect(earlyHeartbeats.count == 2)
        cluster.deliver(earlyHeartbeats)
        cluster.deliver(cluster.process(2) + cluster.process(3))
        _ = cluster.process(1)
        #expect(cluster.readStates[0].map(\.requestID) == [1])
        cluster.deliver(first.filter { !earlyHeartbeats.contains($0) })
        cluster.drain()
        #expect(cluster.readStates[0].map(\.requestID) == [1, 2])
    }

    @Test("A single voter is its own majority: reads confirm at once, and pending reads are bounded")
    func singleVoterReadsAndBound() {
        var cluster = TestCluster(voters: 1, configuration: try! RaftConfiguration(pendingReadsMax: 1))
        cluster.campaign(1)
        #expect(cluster[1].role == .leader)
        #expect(cluster[1].readIndex(requestID: 1) == .pending)
        cluster.drain()
        #expect(cluster.readStates[0] == [ReadState(index: 2, requestID: 1)])
    }
}

/// Bounds on batches and in-flight messages.
@Suite(.onBackgroundThreads) struct FlowControlTests {
    @Test("Pipelined replication never has more than inflightMessagesMax unacknowledged appends per follower")
    func inflightWindowIsBounded() {
        var cluster = TestCluster(voters: 2, configuration: testConfiguration(batchBytesMax: 64, inflightMessagesMax: 2))
        cluster.campaign(1)
        cluster.blocked.insert([2, 1])
        for value: UInt8 in 1...6 { _ = cluster[1].propose([value]) }
        let appends = cluster.process(1).filter {
            if case .appendEntries(let request) = $0.payload { !request.entries.isEmpty } else { false }
        }
        #expect(appends.count == 2)
        cluster.blocked = []
        cluster.deliver(appends)
        cluster.drain()
        cluster.tickAll(times: 2)
        #expect(cluster[2].commitIndex == 8)
    }

    @Test("A leader refuses proposals past the uncommitted-bytes bound and oversized entries")
    func proposalsAreBounded() {
        let configuration = try! RaftConfiguration(appendEntriesBatchBytesMax: 64, inflightBytesMax: 64,
                                                   uncommittedEntriesBytesMax: 100, entryBytesMax: 32)
        var cluster = TestCluster(voters: 3, configuration: configuration)
        cluster.campaign(1)
        cluster.isolate(1)
        #expect(cluster[1].propose(Array(repeating: 0, count: 33)) == .dropped(.entryTooLarge(bytes: 33, entryBytesMax: 32)))
        let thirtyBytes = [UInt8](repeating: 0, count: 30)
        #expect(cluster[1].propose(thirtyBytes) == .accepted(index: 3, term: 2))
        #expect(cluster[1].propose(thirtyBytes) == .dropped(.uncommittedLogFull(uncommittedBytes: 62, uncommittedEntriesBytesMax: 100)))
    }
}

@Suite(.onBackgroundThreads) struct ConfigurationTests {
    @Test("Defaults are valid")
    func defaultsAreValid() throws {
        let configuration = try RaftConfiguration()
        #expect(configuration.electionTimeoutTicks > configuration.heartbeatIntervalTicks)
    }

    @Test("§5.6: the election timeout must exceed the heartbeat interval")
    func electionTimeoutMustExceedHeartbeatInterval() {
        #expect(throws: RaftConfigurationError.electionTimeoutNotAboveHeartbeatInterval(electionTimeoutTicks: 3, heartbeatIntervalTicks: 3)) {
            try RaftConfiguration(electionTimeoutTicks: 3, heartbeatIntervalTicks: 3)
        }
    }

    @Test("Every bound must be positive, and one maximal entry must fit every byte bound")
    func boundsAreValidated() {
        #expect(throws: RaftConfigurationError.notPositive(name: "inflightMessagesMax", value: 0)) {
            try RaftConfiguration(inflightMessagesMax: 0)
        }
        #expect(throws: RaftConfigurationError.entryLargerThanLimit(limitName: "appendEntriesBatchBytesMax", limit: 100, entryBytesMax: 1000)) {
            try RaftConfiguration(appendEntriesBatchBytesMax: 100, entryBytesMax: 1000)
        }
        #expect(throws: RaftConfigurationError.snapshotChunkLargerThanSnapshot(snapshotChunkBytesMax: 10, snapshotBytesMax: 5)) {
            try RaftConfiguration(snapshotChunkBytesMax: 10, snapshotBytesMax: 5)
        }
    }

    @Test("Corrupt persisted state is a typed error, not a crash")
    func corruptPersistedStateIsRejected() {
        var state = PersistentState.bootstrap(voters: [n(1)])
        state.entries.append(Entry(term: 1, index: 3, payload: .empty))
        #expect(throws: PersistentStateError.entriesNotContiguous(expectedIndex: 2, foundIndex: 3)) {
            try RaftNode(id: n(1), configuration: testConfiguration(), restoring: state, randomSeed: 1)
        }
    }
}

@Suite(.onBackgroundThreads) struct ClientSessionTableTests {
    @Test("thesis §6.3: a command whose sequence was already applied for its client is skipped")
    func duplicatesAreSkipped() {
        var table = ClientSessionTable(clientsMax: 4)
        let admitted = [(1, 1, 10), (1, 1, 11), (1, 2, 12), (1, 1, 13), (2, 1, 14)].map { client, sequence, index in
            table.admit(ClientStamp(clientID: UInt64(client), sequence: UInt64(sequence)), at: UInt64(index))
        }
        #expect(admitted == [true, false, true, false, true])
        let restored = ClientSessionTable(sessions: table.sessions, clientsMax: 4)
        #expect(restored == table)
    }

    @Test("The table is bounded; the session with the oldest last index is evicted, the same on every replica")
    func oldestSessionIsEvicted() {
        var table = ClientSessionTable(clientsMax: 2)
        _ = table.admit(ClientStamp(clientID: 5, sequence: 1), at: 1)
        _ = table.admit(ClientStamp(clientID: 6, sequence: 1), at: 2)
        _ = table.admit(ClientStamp(clientID: 5, sequence: 2), at: 3)
        _ = table.admit(ClientStamp(clientID: 7, sequence: 1), at: 4)
        #expect(table.sessions.map(\.clientID) == [5, 7])
    }
}
