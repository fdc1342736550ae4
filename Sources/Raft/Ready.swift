/// A batch of work the core hands to its shell. The shell MUST process it in this order:
///
/// 1. Persist, durably (fsync), in this order: `snapshot` (replacing the whole stored log),
///    `entries` (first dropping every stored entry whose index is ≥ `entries.first.index`), and
///    `hardState`. Nothing else may be done before these writes are durable.
/// 2. Only then send `messages`. A vote, an acknowledgement or a commit announcement sent before
///    the state it vouches for is durable could be forgotten by a crash, which breaks Raft's safety
///    (figure 2: "Updated on stable storage before responding to RPCs").
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
