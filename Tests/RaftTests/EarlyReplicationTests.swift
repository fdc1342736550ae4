import TestSupport
import Raft
import Testing

/// Thesis §10.2.1: "the leader can write to its disk in parallel with replicating to its
/// followers". `Ready.messagesMaySendBeforePersisting` says when a batch may do that.
@Suite(.onBackgroundThreads) struct EarlyReplicationTests {
    let durable = HardState(term: 4, votedFor: n(1), commitIndex: 7)

    func message(_ payload: Message.Payload) -> Message {
        Message(from: n(1), to: n(2), term: 4, payload: payload)
    }

    var append: Message {
        message(.appendEntries(AppendEntries(prevLogIndex: 7, prevLogTerm: 4, entries: [], leaderCommitIndex: 7)))
    }

    @Test func aLeadersReplicationMayLeaveBeforeItsOwnWrite() {
        let ready = Ready(
            hardState: HardState(term: 4, votedFor: n(1), commitIndex: 8),
            entries: [Entry(term: 4, index: 9, payload: .command(data: [1], stamp: nil))],
            messages: [append, message(.heartbeat(Heartbeat(commitIndex: 8, readRound: 0)))])
        #expect(ready.messagesMaySendBeforePersisting(durableHardState: durable))
    }

    @Test func aChangeOfTermOrVoteWaitsForTheWrite() {
        // "Updated on stable storage before responding to RPCs" (figure 2): a new term or vote
        // must be durable before anything is sent in it.
        let newTerm = Ready(hardState: HardState(term: 5, votedFor: nil, commitIndex: 7), messages: [append])
        let newVote = Ready(hardState: HardState(term: 4, votedFor: n(2), commitIndex: 7), messages: [append])
        #expect(!newTerm.messagesMaySendBeforePersisting(durableHardState: durable))
        #expect(!newVote.messagesMaySendBeforePersisting(durableHardState: durable))
    }

    @Test func votesAcknowledgementsSnapshotsAndTimeoutNowWaitForTheWrite() {
        let request = VoteRequest(lastLogIndex: 7, lastLogTerm: 4, isLeadershipTransfer: false)
        let waiting: [Message.Payload] = [
            .voteRequest(request), .voteResponse(granted: true), .preVoteRequest(request),
            .preVoteResponse(granted: true), .appendEntriesResponse(.accepted(matchIndex: 7)),
            .heartbeatResponse(HeartbeatResponse(readRound: 0)), .timeoutNow,
            .installSnapshotResponse(InstallSnapshotResponse(snapshotIndex: 7, bytesReceived: 0)),
        ]
        for payload in waiting {
            let ready = Ready(messages: [append, message(payload)])
            #expect(!ready.messagesMaySendBeforePersisting(durableHardState: durable), "\(payload)")
        }
        let snapshot = Snapshot(metadata: SnapshotMetadata(index: 7, term: 4, membership: Membership(voters: [n(1)])), data: [])
        #expect(!Ready(snapshot: snapshot, messages: [append]).messagesMaySendBeforePersisting(durableHardState: durable))
    }
}
