/// A batch of work the core hands to its shell. The shell MUST process it in this order:
///
/// 1. Persist, durably (fsync), in this order: `snapshot` (replacing the whole stored log),
///    `entries` (first dropping every stored entry whose index is ≥ `entries.first.index`), and
///    `hardState`. Nothing else may be done before these writes are durable.
/// 2. Only then send `messages`. A vote, an acknowledgement or a commit announcement sent before
///    the state it vouches for is durable could be forgotten by a crash, which breaks Raft's safety
///    (figure 2: "Updated on stable storage before responding to RPCs"). One exception: a batch
///    for which `messagesMaySendBeforePersisting(durableHardState:)` is true (a leader's
///    replication, thesis §10.2.1) may send its messages before or while step 1 runs.
/// 3. Restore the state machine from `snapshot` if present, then apply `committedEntries` in order.
///    Each committed entry is handed out exactly once per process lifetime; after a restart the core
///    hands out again every committed entry after the snapshot it was restored from.
/// 4. Serve each `ReadState` once the applied index has reached its `index`.
/// 5. Call `RaftNode.advance(_:)` with this value, before asking for the next `Ready`.
public struct Ready: Equatable, Sendable {
    /// Non-nil when term, vote or commit index changed since the last `Ready`.
    public var hardState: HardState?
    /// A snapshot received from the leader. The shell replaces its stored log with it, then
    /// restores its state machine from it (after step 2).
    public var snapshot: Snapshot?
    /// Entries to make durable. The first one's index is where the stored log is cut before
    /// appending: a follower may have had to replace conflicting entries (§5.3).
    public var entries: [Entry]
    /// Messages to send after step 1, in any order, best effort: Raft retries on its own.
    public var messages: [Message]
    /// Committed entries to apply in order: a prefix-closed, gapless continuation of the last batch.
    public var committedEntries: [Entry]
    /// Confirmed linearizable reads (see `RaftNode.readIndex(requestID:)`).
    public var readStates: [ReadState]

    public init(
        hardState: HardState? = nil, snapshot: Snapshot? = nil, entries: [Entry] = [],
        messages: [Message] = [], committedEntries: [Entry] = [], readStates: [ReadState] = []
    ) {
        self.hardState = hardState
        self.snapshot = snapshot
        self.entries = entries
        self.messages = messages
        self.committedEntries = committedEntries
        self.readStates = readStates
    }
}

/// A ReadIndex answer (thesis §6.4): the read identified by `requestID` may be served from the
/// local state machine as soon as it has applied through `index`. It reflects every write that
/// was committed before the read was requested, which makes the read linearizable.
public struct ReadState: Equatable, Sendable {
    public var index: UInt64
    public var requestID: UInt64

    public init(index: UInt64, requestID: UInt64) {
        self.index = index
        self.requestID = requestID
    }
}

public enum Role: Equatable, Sendable {
    case follower
    case preCandidate
    case candidate
    case leader
}

/// The answer to `propose`, `proposeMembershipChange`, `readIndex` and `transferLeadership`.
/// Refusals are typed so that the shell can act: forward to the leader, back off, or give up.
public enum ProposeResult: Equatable, Sendable {
    /// Appended to the leader's log at (index, term). Not yet committed: the proposal succeeded
    /// only if the entry at `index` that is later applied has this `term` (§8 / thesis §6.3).
    case accepted(index: UInt64, term: UInt64)
    /// This server is not the leader. `leaderID`, when known, is where the shell should forward.
    case notLeader(leaderID: NodeID?)
    case dropped(DropReason)
}

public enum DropReason: Error, Equatable, Sendable {
    /// The leader is handing over leadership (thesis §3.10: "the prior leader stops accepting
    /// client requests" during a transfer).
    case leadershipTransferInProgress
    case entryTooLarge(bytes: Int, entryBytesMax: Int)
    case uncommittedLogFull(uncommittedBytes: Int, uncommittedEntriesBytesMax: Int)
    /// Only one uncommitted membership change at a time (thesis §4.1).
    case membershipChangeInProgress(pendingIndex: UInt64)
    /// A leader must commit an entry of its own term before it changes membership (the fix to
    /// single-server changes Ongaro posted to raft-dev in 2015, thesis errata), and before it can
    /// answer ReadIndex requests (thesis §6.4 step 1).
    case leaderHasNotCommittedInTerm
    case invalidMembershipChange(MembershipChangeRejection)
    case tooManyPendingReads(pendingReadsMax: Int)
    case transferTargetNotVoter(NodeID)
}

extension Ready {
    /// True when the shell may send `messages` before step 1 of the contract is durable, in
    /// parallel with its own write, instead of after it.
    ///
    /// Thesis §10.2.1: "the leader can write to its disk in parallel with replicating to its
    /// followers". That holds here for a batch that vouches for nothing new on this server's disk:
    /// no snapshot, no change of term or vote (compared with `durableHardState`, the hard state
    /// the shell last made durable), and only a leader's AppendEntries and heartbeats, which
    /// promise nothing about the sender's log. Votes, acknowledgements, snapshot chunks and
    /// TimeoutNow always wait for the write.
    ///
    /// Why the commit rule stays safe: the core counts the leader's own log when it computes the
    /// commit index, and that log may include entries of this very batch not yet durable. But a
    /// follower can acknowledge an entry only after receiving it, i.e. after this batch was taken,
    /// and the shell takes the next `Ready` (which carries any commit announcement and the entries
    /// to apply) only after this batch's write is durable. So nothing that depends on the leader's
    /// copy is applied or announced before that copy is on disk. A shell that overlaps two
    /// batches' writes must not use this.
    public func messagesMaySendBeforePersisting(durableHardState: HardState) -> Bool {
        guard snapshot == nil else { return false }
        if let state = hardState, state.term != durableHardState.term || state.votedFor != durableHardState.votedFor {
            return false
        }
        return messages.allSatisfy { message in
            switch message.payload {
            case .appendEntries, .heartbeat:
                return true
            case .preVoteRequest, .preVoteResponse, .voteRequest, .voteResponse, .appendEntriesResponse,
                 .heartbeatResponse, .installSnapshot, .installSnapshotResponse, .timeoutNow:
                return false
            }
        }
    }
}
