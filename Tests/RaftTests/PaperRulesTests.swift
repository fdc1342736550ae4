@testable import Raft
import TestSupport
import Testing

/// Transcript tests for the rules of the extended Raft paper; each quotes the sentence it checks.
@Suite(.onBackgroundThreads) struct PaperRulesTests {
    @Test("§5.1: \"If a server receives a request with a stale term number, it rejects the request.\"")
    func staleTermRequestIsRejected() {
        var cluster = TestCluster(states: [persistedLog(terms: [1], voters: 3, currentTerm: 5)])
        cluster[1].step(Message(from: n(2), to: n(1), term: 3, payload: .appendEntries(AppendEntries(
            prevLogIndex: 1, prevLogTerm: 1, entries: [Entry(term: 3, index: 2, payload: .empty)], leaderCommitIndex: 1))))
        let replies = cluster.process(1)
        #expect(replies == [Message(from: n(1), to: n(2), term: 5, payload: .appendEntriesResponse(.staleTerm))])
        #expect(cluster[1].lastIndex == 1)
        cluster[1].step(Message(from: n(2), to: n(1), term: 4, payload: .voteRequest(VoteRequest(
            lastLogIndex: 9, lastLogTerm: 4, isLeadershipTransfer: false))))
        #expect(cluster.process(1) == [Message(from: n(1), to: n(2), term: 5, payload: .voteResponse(granted: false))])
        #expect(cluster[1].votedFor == nil)
    }

    @Test("§5.1: \"If a candidate or leader discovers that its term is out of date, it immediately reverts to follower state.\"")
    func leaderWithStaleTermRevertsToFollower() {
        var cluster = TestCluster(voters: 3)
        cluster.campaign(1)
        #expect(cluster[1].role == .leader)
        let term = cluster[1].term
        cluster[1].step(Message(from: n(2), to: n(1), term: term + 1, payload: .heartbeatResponse(HeartbeatResponse(readRound: 0))))
        #expect(cluster[1].role == .follower)
        #expect(cluster[1].term == term + 1)
    }

    @Test("§5.2: \"If a follower receives no communication over a period of time called the election timeout, then it assumes there is no viable leader and begins an election\"")
    func followerStartsElectionAfterElectionTimeout() {
        var cluster = TestCluster(voters: 3)
        let timeout = cluster[1].randomizedElectionTimeoutTicks
        #expect((10..<20).contains(timeout), "§5.2: timeouts are drawn from [T, 2T)")
        cluster.tick(1, times: timeout - 1)
        #expect(cluster[1].role == .follower)
        cluster.tick(1)
        // "To begin an election, a follower increments its current term and transitions to
        // candidate state. It then votes for itself and issues RequestVote RPCs in parallel".
        #expect(cluster[1].role == .candidate)
        #expect(cluster[1].term == 2)
        #expect(cluster[1].votedFor == n(1))
        let requests = cluster.process(1)
        #expect(requests.map(\.to) == [n(2), n(3)])
        #expect(requests.allSatisfy { if case .voteRequest = $0.payload { $0.term == 2 } else { false } })
    }

    @Test("§5.2: \"A candidate wins an election if it receives votes from a majority of the servers in the full cluster for the same term.\"")
    func candidateWithMajorityBecomesLeader() {
        var cluster = TestCluster(voters: 5)
        cluster.isolate(4)
        cluster.isolate(5)
        cluster.campaign(1)
        #expect(cluster[1].role == .leader)
        #expect(cluster[2].leaderID == n(1))
        // §8: the new leader's first entry is a no-op of its term.
        #expect(cluster[1].entry(at: 2)?.payload == .empty)
        #expect(cluster[1].entry(at: 2)?.term == cluster[1].term)
    }

    @Test("§5.2: \"Each server will vote for at most one candidate in a given term, on a first-come-first-served basis\"")
    func serverVotesForAtMostOneCandidatePerTerm() {
        var cluster = TestCluster(voters: 3)
        let request = VoteRequest(lastLogIndex: 1, lastLogTerm: 1, isLeadershipTransfer: false)
        cluster[3].step(Message(from: n(1), to: n(3), term: 2, payload: .voteRequest(request)))
        cluster[3].step(Message(from: n(2), to: n(3), term: 2, payload: .voteRequest(request)))
        cluster[3].step(Message(from: n(1), to: n(3), term: 2, payload: .voteRequest(request)))
        let replies = cluster.process(3).map { ($0.to, $0.payload) }
        #expect(replies.map(\.0) == [n(1), n(2), n(1)])
        #expect(replies.map(\.1) == [.voteResponse(granted: true), .voteResponse(granted: false), .voteResponse(granted: true)])
        #expect(cluster.persisted[2].hardState.votedFor == n(1), "the vote is persisted before the reply is sent")
    }

    @Test("§5.4.1: \"The voter denies its vote if its own log is more up-to-date than that of the candidate.\"")
    func voterDeniesCandidateWithLessUpToDateLog() {
        var cluster = TestCluster(states: [persistedLog(terms: [1, 2, 2], voters: 3, currentTerm: 2)])
        // Lower last term loses even with a longer log.
        cluster[1].step(Message(from: n(2), to: n(1), term: 3, payload: .voteRequest(VoteRequest(lastLogIndex: 9, lastLogTerm: 1, isLeadershipTransfer: false))))
        // Same last term but shorter loses.
        cluster[1].step(Message(from: n(3), to: n(1), term: 4, payload: .voteRequest(VoteRequest(lastLogIndex: 2, lastLogTerm: 2, isLeadershipTransfer: false))))
        // Same last term, same length: granted.
        cluster[1].step(Message(from: n(3), to: n(1), term: 5, payload: .voteRequest(VoteRequest(lastLogIndex: 3, lastLogTerm: 2, isLeadershipTransfer: false))))
        #expect(cluster.process(1).map(\.payload) == [
            .voteResponse(granted: false), .voteResponse(granted: false), .voteResponse(granted: true),
        ])
    }

    @Test("§5.3: \"Once a follower learns that a log entry is committed, it applies the entry to its local state machine (in log order).\"")
    func committedEntryIsAppliedOnEveryServerExactlyOnce() {
        var cluster = TestCluster(voters: 3)
        cluster.campaign(1)
        #expect(cluster[2].propose([1]) == .notLeader(leaderID: n(1)), "§8: a follower refuses and names the leader")
        #expect(cluster[1].propose([7]) == .accepted(index: 3, term: 2))
        cluster.drain()
        cluster.tickAll(times: 2)
        for id: UInt64 in 1...3 {
            #expect(cluster.commands(id) == [[7]])
            #expect(cluster.applied(id).map(\.index) == [1, 2, 3])
        }
    }

    @Test("§5.3: \"If a follower's log is inconsistent with the leader's, the AppendEntries consistency check will fail\"; \"If an existing entry conflicts with a new one ... delete the existing entry and all that follow it\"")
    func followerReplacesConflictingEntries() {
        // The follower holds entries of term 2 that the term-3 leader never had.
        var cluster = TestCluster(states: [
            persistedLog(terms: [1, 1, 3], voters: 2, currentTerm: 3),
            persistedLog(terms: [1, 1, 2, 2, 2], voters: 2, currentTerm: 2),
        ])
        cluster.campaign(1)
        #expect(cluster[1].role == .leader)
        #expect(cluster[2].lastIndex == 4)
        #expect((1...4).map { cluster[2].term(at: $0) } == [1, 1, 3, 4])
        // The rejection carried a hint that skipped the follower's whole term-2 run at once.
        let rejections = cluster.delivered.filter { if case .appendEntriesResponse(.rejected) = $0.payload { true } else { false } }
        #expect(rejections.count == 1)
    }

    @Test("Figure 2, AppendEntries rule 3: only an entry that *conflicts* is deleted; a delayed, shorter request never truncates entries that arrived after it")
    func staleShorterAppendDoesNotTruncate() {
        var cluster = TestCluster(voters: 2)
        _ = cluster.process(2)
        let entries = (2...4).map { Entry(term: 2, index: UInt64($0), payload: .command(data: [UInt8($0)], stamp: nil)) }
        let full = AppendEntries(prevLogIndex: 1, prevLogTerm: 1, entries: entries, leaderCommitIndex: 1)
        let short = AppendEntries(prevLogIndex: 1, prevLogTerm: 1, entries: Array(entries.prefix(1)), leaderCommitIndex: 1)
        cluster[2].step(Message(from: n(1), to: n(2), term: 2, payload: .appendEntries(full)))
        cluster[2].step(Message(from: n(1), to: n(2), term: 2, payload: .appendEntries(short)))
        #expect(cluster[2].lastIndex == 4)
        let replies = cluster.process(2).map(\.payload)
        #expect(replies == [.appendEntriesResponse(.accepted(matchIndex: 4)), .appendEntriesResponse(.accepted(matchIndex: 2))])
        #expect(cluster.persisted[1].entries.map(\.index) == [1, 2, 3, 4])
    }

    @Test("figure 3: \"Leader Append-Only: a leader never overwrites or deletes entries in its log; it only appends new entries.\"")
    func leaderNeverOverwritesItsLog() {
        var cluster = TestCluster(voters: 3)
        cluster.campaign(1)
        cluster.isolate(1)
        _ = cluster[1].propose([1])
        _ = cluster[1].propose([2])
        let before = (1...cluster[1].lastIndex).map { cluster[1].entry(at: $0) }
        let term = cluster[1].term
        // Another node claiming leadership in the same term, and followers rejecting, change nothing.
        cluster[1].step(Message(from: n(2), to: n(1), term: term, payload: .appendEntries(AppendEntries(
            prevLogIndex: 1, prevLogTerm: 1, entries: [Entry(term: term, index: 2, payload: .command(data: [9], stamp: nil))], leaderCommitIndex: 2))))
        cluster[1].step(Message(from: n(2), to: n(1), term: term, payload: .appendEntriesResponse(.rejected(rejectedIndex: 3, hintIndex: 1, hintTerm: 1))))
        #expect((1...cluster[1].lastIndex).map { cluster[1].entry(at: $0) } == before)
        #expect(cluster[1].role == .leader)
    }

    @Test("§5.4.2: \"Raft never commits log entries from previous terms by counting replicas. Only log entries from the leader's current term are committed by counting replicas\" (figure 8)")
    func oldTermEntryIsNotCommittedByCountingReplicas() {
        // Figure 8 (c): S1 leads term 4 with the term-2 entry at index 2, which S2 and S3 also hold.
        var cluster = TestCluster(states: [
            persistedLog(terms: [1, 2], voters: 5, currentTerm: 3),
            persistedLog(terms: [1, 2], voters: 5, currentTerm: 3),
            persistedLog(terms: [1], voters: 5, currentTerm: 3),
            persistedLog(terms: [1], voters: 5, currentTerm: 3),
            persistedLog(terms: [1, 3], voters: 5, currentTerm: 3),
        ])
        for other: UInt64 in 2...5 { cluster.isolate(other) }
        cluster.tick(1, times: cluster[1].randomizedElectionTimeoutTicks)
        #expect(cluster[1].role == .candidate && cluster[1].term == 4)
        for voter: UInt64 in [2, 3] {
            cluster[1].step(Message(from: n(voter), to: n(1), term: 4, payload: .voteResponse(granted: true)))
        }
        #expect(cluster[1].role == .leader)
        #expect(cluster[1].lastIndex == 3, "no-op of term 4 at index 3")
        // S2 and S3 acknowledge index 2 (term 2): a majority holds it, yet it must not commit,
        // because S5 (last term 3) could still be elected and overwrite it (figure 8 (d)).
        for follower: UInt64 in [2, 3] {
            cluster[1].step(Message(from: n(follower), to: n(1), term: 4, payload: .appendEntriesResponse(.accepted(matchIndex: 2))))
        }
        #expect(cluster[1].commitIndex == 1)
        // Once an entry of term 4 is on a majority, it and everything before it commit (figure 8 (e)).
        for follower: UInt64 in [2, 3] {
            cluster[1].step(Message(from: n(follower), to: n(1), term: 4, payload: .appendEntriesResponse(.accepted(matchIndex: 3))))
        }
        #expect(cluster[1].commitIndex == 3)
    }

    @Test("figure 3: \"Leader Completeness: if a log entry is committed in a given term, then that entry will be present in the logs of the leaders for all higher-numbered terms.\"")
    func serverMissingCommittedEntryCannotBecomeLeader() {
        var cluster = TestCluster(voters: 3)
        cluster.campaign(1)
        cluster.blocked.insert([1, 3])
        _ = cluster[1].propose([42])
        cluster.drain()
        #expect(cluster[1].commitIndex == 3)
        #expect(cluster[3].lastIndex == 2)
        cluster.isolate(1)
        cluster.campaign(3)
        #expect(cluster[3].role != .leader, "n3 lacks committed entry 3; n2 must refuse")
        cluster.campaign(2)
        #expect(cluster[2].role == .leader)
        #expect(cluster[2].entry(at: 3)?.payload == .command(data: [42], stamp: nil))
    }

    @Test("Figure 2: persistent state is \"Updated on stable storage before responding to RPCs\": a restarted server keeps term, vote and log")
    func restartedServerRecoversPersistedState() throws {
        var cluster = TestCluster(voters: 3)
        cluster.campaign(1)
        _ = cluster[1].propose([5])
        cluster.drain()
        let restarted = try RaftNode(id: n(2), configuration: testConfiguration(), restoring: cluster.persisted[1], randomSeed: 9)
        #expect(restarted.term == cluster[2].term)
        #expect(restarted.votedFor == n(1))
        #expect(restarted.lastIndex == 3)
        #expect(restarted.role == .follower)
    }

    @Test("Malformed or misaddressed input is dropped, never trusted or trapped on")
    func malformedMessagesAreIgnored() {
        var cluster = TestCluster(voters: 3)
        _ = cluster.process(2)
        // Entries that do not follow prevLogIndex.
        cluster[2].step(Message(from: n(1), to: n(2), term: 2, payload: .appendEntries(AppendEntries(
            prevLogIndex: 1, prevLogTerm: 1, entries: [Entry(term: 2, index: 5, payload: .empty)], leaderCommitIndex: 5))))
        // Misaddressed.
        cluster[2].step(Message(from: n(1), to: n(3), term: 9, payload: .timeoutNow))
        // A snapshot chunk that overruns its own total.
        cluster[2].step(Message(from: n(1), to: n(2), term: 2, payload: .installSnapshot(InstallSnapshotChunk(
            metadata: SnapshotMetadata(index: 9, term: 2, membership: .empty), totalBytes: 1, offset: 0, data: [1, 2]))))
        #expect(cluster[2].term == 1)
        #expect(cluster[2].lastIndex == 1)
        #expect(!cluster[2].hasReady)
    }
}
