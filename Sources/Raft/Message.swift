/// One message between two servers. Plain values: encoding for the wire is module Wire's job.
///
/// `term` is the sender's current term, except in a pre-vote request (the term the sender would
/// campaign in) and a granted pre-vote response (that same future term), as in thesis §9.6.
public struct Message: Equatable, Sendable, CustomStringConvertible {
    public var from: NodeID
    public var to: NodeID
    public var term: UInt64
    public var payload: Payload

    public init(from: NodeID, to: NodeID, term: UInt64, payload: Payload) {
        self.from = from
        self.to = to
        self.term = term
        self.payload = payload
    }

    public enum Payload: Equatable, Sendable {
        case preVoteRequest(VoteRequest)
        case preVoteResponse(granted: Bool)
        case voteRequest(VoteRequest)
        case voteResponse(granted: Bool)
        case appendEntries(AppendEntries)
        case appendEntriesResponse(AppendEntriesResponse)
        case heartbeat(Heartbeat)
        case heartbeatResponse(HeartbeatResponse)
        case installSnapshot(InstallSnapshotChunk)
        case installSnapshotResponse(InstallSnapshotResponse)
        /// Leadership transfer (thesis §3.10): "start an election now", skipping pre-vote.
        case timeoutNow
    }

    public var description: String { "\(from)->\(to) t\(term) \(payload)" }
}

public struct VoteRequest: Equatable, Sendable {
    public var lastLogIndex: UInt64
    public var lastLogTerm: UInt64
    /// Set when the election was started by TimeoutNow: receivers then vote even though they
    /// heard from the (current, consenting) leader recently (thesis §3.10, §4.2.3).
    public var isLeadershipTransfer: Bool

    public init(lastLogIndex: UInt64, lastLogTerm: UInt64, isLeadershipTransfer: Bool) {
        self.lastLogIndex = lastLogIndex
        self.lastLogTerm = lastLogTerm
        self.isLeadershipTransfer = isLeadershipTransfer
    }
}

public struct AppendEntries: Equatable, Sendable {
    public var prevLogIndex: UInt64
    public var prevLogTerm: UInt64
    public var entries: [Entry]
    public var leaderCommitIndex: UInt64

    public init(prevLogIndex: UInt64, prevLogTerm: UInt64, entries: [Entry], leaderCommitIndex: UInt64) {
        self.prevLogIndex = prevLogIndex
        self.prevLogTerm = prevLogTerm
        self.entries = entries
        self.leaderCommitIndex = leaderCommitIndex
    }
}

public enum AppendEntriesResponse: Equatable, Sendable {
    /// The follower's log matches the leader's through `matchIndex`.
    case accepted(matchIndex: UInt64)
    /// The follower has no entry matching (`rejectedIndex`, the request's prevLogTerm). The hint
    /// lets the leader skip a whole term of conflicting entries in one round trip (§5.3, the
    /// optimisation sketched at the end of the section): the follower's last entry at or before
    /// `rejectedIndex` whose term is at most the request's prevLogTerm is (`hintIndex`, `hintTerm`).
    case rejected(rejectedIndex: UInt64, hintIndex: UInt64, hintTerm: UInt64)
    /// The request's term was stale (§5.1); the message term tells the old leader the new one.
    case staleTerm
}

/// Heartbeats are separate from AppendEntries (as in etcd raft): they never carry entries, so they
/// need no consistency check and do not disturb the pipelined replication stream.
public struct Heartbeat: Equatable, Sendable {
    /// min(leader's commit index, the follower's known match index): only entries the follower
    /// is known to hold are announced committed.
    public var commitIndex: UInt64
    /// The leader's newest ReadIndex round (0: none). Echoed in the response (thesis §6.4).
    public var readRound: UInt64

    public init(commitIndex: UInt64, readRound: UInt64) {
        self.commitIndex = commitIndex
        self.readRound = readRound
    }
}

public struct HeartbeatResponse: Equatable, Sendable {
    public var readRound: UInt64
    public init(readRound: UInt64) { self.readRound = readRound }
}

/// One chunk of an InstallSnapshot RPC (§7, figure 13: offset, data, done). Chunks are accepted
/// only in order; `done` is `offset + data.count == totalBytes`.
public struct InstallSnapshotChunk: Equatable, Sendable {
    public var metadata: SnapshotMetadata
    public var totalBytes: Int
    public var offset: Int
    public var data: [UInt8]

    public init(metadata: SnapshotMetadata, totalBytes: Int, offset: Int, data: [UInt8]) {
        self.metadata = metadata
        self.totalBytes = totalBytes
        self.offset = offset
        self.data = data
    }

    public var isLast: Bool { offset + data.count == totalBytes }
}

/// How many bytes of the snapshot at `snapshotIndex` the follower holds. Once it has installed
/// the whole snapshot the follower answers with `AppendEntriesResponse.accepted` instead.
public struct InstallSnapshotResponse: Equatable, Sendable {
    public var snapshotIndex: UInt64
    public var bytesReceived: Int

    public init(snapshotIndex: UInt64, bytesReceived: Int) {
        self.snapshotIndex = snapshotIndex
        self.bytesReceived = bytesReceived
    }
}
