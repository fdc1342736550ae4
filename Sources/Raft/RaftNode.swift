/// One Raft server as a deterministic state machine (the shape of etcd raft's `raft` struct).
///
/// Inputs: `tick()` (abstract time), `step(_:)` (a message from a peer), and the requests
/// `propose`, `proposeMembershipChange`, `readIndex`, `transferLeadership`, `createSnapshot`.
/// Output: a `Ready` batch, whose contract (persist, then send, then apply, then `advance`) is
/// written on that type. The core performs no IO, reads no clock, and draws randomness only from
/// the `SplitMix64` seeded by its creator, so a run is fully determined by its inputs.
///
/// Rules of the extended Raft paper (Ongaro & Ousterhout, "In Search of an Understandable
/// Consensus Algorithm", §n) and of Ongaro's thesis ("Consensus: Bridging Theory and Practice",
/// thesis §n) are cited where they are implemented.
///
/// Deviations from the paper, all following etcd raft:
/// - Heartbeats are their own message rather than empty AppendEntries (see `Heartbeat`).
/// - The commit index is persisted in `HardState` (restarted servers re-apply without a leader).
/// - A leader counts its own log towards a majority before the shell has made it durable. That is
///   safe because the shell persists a `Ready` before sending anything from it, and applies
///   committed entries only after persisting, so no other server and no client can observe the
///   commitment before the leader's copy is durable.
public struct RaftNode: Sendable {
    public let id: NodeID
    public let configuration: RaftConfiguration

    public internal(set) var term: UInt64
    public internal(set) var votedFor: NodeID?
    /// The leader of `term` as far as this server knows.
    public internal(set) var leaderID: NodeID?
    public internal(set) var role: Role = .follower
    /// The index through which the shell has applied committed entries (via `advance`).
    public internal(set) var appliedIndex: UInt64

    var random: SplitMix64
    var log: RaftLog

    /// Followers and candidates: ticks since the last valid message from a leader (or since the
    /// last election started). Leaders: ticks since the last check-quorum round.
    var electionElapsedTicks = 0
    var randomizedElectionTimeoutTicks = 0
    var heartbeatElapsedTicks = 0
    /// (Pre-)candidates: the answers received this round.
    var votesReceived: [NodeID: Bool] = [:]
    /// Leaders: one entry per member other than this server.
    var progress: [NodeID: Progress] = [:]
    var transferTarget: NodeID?
    var transferElapsedTicks = 0
    /// Leaders: bytes of entries appended in this term and not yet committed.
    var uncommittedBytes = 0
    var readRound: UInt64 = 0
    /// Leaders: reads joined `readRound` and its heartbeats have not gone out yet.
    var readRoundOpen = false
    var pendingReads: [PendingRead] = []
    /// Followers: the snapshot whose chunks are arriving.
    var receivingSnapshot: ReceivingSnapshot?

    // What the next `Ready` hands out.
    var outbox: [Message] = []
    var readStates: [ReadState] = []
    var snapshotToPersist: Snapshot?
    var lastHandedOutHardState: HardState
    var appliedHandedOutIndex: UInt64
    var readyOutstanding = false

    struct PendingRead: Sendable {
        var requestID: UInt64
        /// nil until the leader has committed an entry of its term (thesis §6.4 step 1).
        var index: UInt64?
        var round: UInt64
    }

    struct ReceivingSnapshot: Sendable {
        var metadata: SnapshotMetadata
        var totalBytes: Int
        var data: [UInt8]
    }

    /// Starts (or restarts) a server from what it persisted. The state machine is expected to be
    /// restored from `state.snapshot`; committed entries after it are handed out again.
    public init(
        id: NodeID, configuration: RaftConfiguration, restoring state: PersistentState, randomSeed: UInt64
    ) throws(PersistentStateError) {
        self.id = id
        self.configuration = configuration
        self.log = try RaftLog(restoring: state)
        self.term = state.hardState.term
        self.votedFor = state.hardState.votedFor
        self.random = SplitMix64(seed: randomSeed)
        self.appliedIndex = state.snapshot.metadata.index
        self.appliedHandedOutIndex = state.snapshot.metadata.index
        self.lastHandedOutHardState = state.hardState
        self.lastHandedOutHardState.commitIndex = log.commitIndex
        resetTimers()
    }

    // MARK: Inspection (for shells, tests and the simulation)

    public var commitIndex: UInt64 { log.commitIndex }
    /// Messages `step` dropped as malformed (a forged or corrupt peer; see `isWellFormed`).
    public internal(set) var malformedMessagesDropped: UInt64 = 0
    public var lastIndex: UInt64 { log.lastIndex }
    public var lastTerm: UInt64 { log.lastTerm }
    public var membership: Membership { log.membership }
    public var snapshotMetadata: SnapshotMetadata { log.snapshot.metadata }
    public var hardState: HardState { HardState(term: term, votedFor: votedFor, commitIndex: log.commitIndex) }
    public func term(at index: UInt64) -> UInt64? { log.term(at: index) }
    public func entry(at index: UInt64) -> Entry? { log.entry(at: index) }
    /// Leaders: the highest index known to be replicated on `peer`.
    public func matchIndex(of peer: NodeID) -> UInt64? { progress[peer]?.matchIndex }
    public var leadershipTransferTarget: NodeID? { transferTarget }

    // MARK: Time

    /// Advances abstract time by one tick.
    public mutating func tick() {
        switch role {
        case .leader: tickLeader()
        case .follower, .preCandidate, .candidate: tickElection()
        }
    }

    private mutating func tickElection() {
        electionElapsedTicks += 1
        // Only voters campaign: learners and removed servers must not disturb the cluster.
        guard log.membership.isVoter(id), electionElapsedTicks >= randomizedElectionTimeoutTicks else { return }
        campaign(isLeadershipTransfer: false)
    }

    private mutating func tickLeader() {
        heartbeatElapsedTicks += 1
        electionElapsedTicks += 1
        if electionElapsedTicks >= configuration.electionTimeoutTicks {
            electionElapsedTicks = 0
            // Thesis §6.2: "a leader steps down if an election timeout elapses without a successful
            // round of heartbeats to a majority of its cluster".
            if configuration.checkQuorumEnabled && !takeQuorumActivity() {
                becomeFollower(term: term, leader: nil)
                return
            }
        }
        if transferTarget != nil {
            transferElapsedTicks += 1
            // Thesis §3.10: "If the transfer does not complete after about one election timeout,
            // the prior leader aborts the transfer and resumes accepting client requests."
            if transferElapsedTicks >= configuration.electionTimeoutTicks { transferTarget = nil }
        }
        if heartbeatElapsedTicks >= configuration.heartbeatIntervalTicks {
            heartbeatElapsedTicks = 0
            broadcastHeartbeat()
            retransmitStalledSnapshots()
        }
    }

    /// Whether a majority of voters was heard from since the last call; clears the marks.
    private mutating func takeQuorumActivity() -> Bool {
        let voters = log.membership.voters
        let active = voters.filter { $0 == id || progress[$0]?.recentlyActive == true }.count
        for peer in progress.keys { progress[peer]!.recentlyActive = false }
        return active >= log.membership.quorum
    }

    // MARK: Messages

    /// Feeds one message from a peer. Malformed or misaddressed messages are dropped: input from
    /// the network must never crash the server.
    public mutating func step(_ message: Message) {
        guard message.to == id, message.from != id else { return }
        guard Self.isWellFormed(message), !exceedsLimits(message) else {
            malformedMessagesDropped += 1
            return
        }
        if message.term > term {
            guard handleHigherTerm(message) else { return }
        } else if message.term < term {
            respondToStaleTerm(message)
            return
        }
        switch message.payload {
        case .preVoteRequest(let request):
            handleVoteRequest(from: message.from, term: message.term, request, isPreVote: true)
        case .voteRequest(let request):
            handleVoteRequest(from: message.from, term: message.term, request, isPreVote: false)
        default:
            switch role {
            case .follower: stepFollower(message)
            case .preCandidate, .candidate: stepCandidate(message)
            case .leader: stepLeader(message)
            }
        }
    }

    /// Whether `message` is larger than any a leader with this configuration sends. Every server
    /// of a cluster runs the same limits, so such a message is forged or corrupt: accepting it
    /// would hand the log an entry its write-ahead log may not hold (which stops the replica), or
    /// make this server buffer a snapshot past the size it agreed to.
    private func exceedsLimits(_ message: Message) -> Bool {
        switch message.payload {
        case .appendEntries(let append):
            var batchBytes = 0
            for entry in append.entries {
                guard entry.sizeBytes <= configuration.entryBytesMax + Entry.overheadBytes else { return true }
                batchBytes += entry.sizeBytes
            }
            // A leader sends at least one entry whatever its size (`RaftLog.entries(from:bytesMax:)`).
            return append.entries.count > 1 && batchBytes > configuration.appendEntriesBatchBytesMax
        case .installSnapshot(let chunk):
            return chunk.data.count > configuration.snapshotChunkBytesMax || chunk.totalBytes > configuration.snapshotBytesMax
        default:
            return false
        }
    }

    /// §5.1: "If a server's current term is smaller than the other's, then it updates its current
    /// term to the larger value. If a candidate or leader discovers that its term is out of date,
    /// it immediately reverts to follower state." Returns false when the message is to be ignored.
    private mutating func handleHigherTerm(_ message: Message) -> Bool {
        switch message.payload {
        case .preVoteRequest(let request), .voteRequest(let request):
            // Thesis §4.2.3: "if a server receives a RequestVote request within the minimum
            // election timeout of hearing from a current leader, it does not update its term or
            // grant its vote". Leadership transfer is the one exception (thesis §3.10).
            if isWithinLeaderLease && !request.isLeadershipTransfer { return false }
        default:
            break
        }
        switch message.payload {
        case .preVoteRequest:
            // Thesis §9.6: a pre-vote does not change anyone's term.
            return true
        case .preVoteResponse(granted: true):
            // Granted pre-votes carry the term we would campaign in; our term moves only when
            // we actually campaign.
            return true
        case .appendEntries, .heartbeat, .installSnapshot:
            becomeFollower(term: message.term, leader: message.from)
            return true
        default:
            becomeFollower(term: message.term, leader: nil)
            return true
        }
    }

    private var isWithinLeaderLease: Bool {
        configuration.checkQuorumEnabled && leaderID != nil
            && electionElapsedTicks < configuration.electionTimeoutTicks
    }

    /// §5.1: "If a server receives a request with a stale term number, it rejects the request."
    /// The rejection carries our term, which makes a deposed leader or candidate step down.
    private mutating func respondToStaleTerm(_ message: Message) {
        switch message.payload {
        case .appendEntries, .heartbeat, .installSnapshot:
            send(to: message.from, .appendEntriesResponse(.staleTerm))
        case .preVoteRequest:
            send(to: message.from, .preVoteResponse(granted: false))
        case .voteRequest:
            send(to: message.from, .voteResponse(granted: false))
        case .preVoteResponse, .voteResponse, .appendEntriesResponse, .heartbeatResponse,
             .installSnapshotResponse, .timeoutNow:
            break
        }
    }

    private mutating func stepFollower(_ message: Message) {
        switch message.payload {
        case .appendEntries(let request):
            heardFromLeader(message.from)
            handleAppendEntries(from: message.from, request)
        case .heartbeat(let heartbeat):
            heardFromLeader(message.from)
            handleHeartbeat(from: message.from, heartbeat)
        case .installSnapshot(let chunk):
            heardFromLeader(message.from)
            handleSnapshotChunk(from: message.from, chunk)
        case .timeoutNow:
            // Thesis §3.10: the target "starts an election immediately", without pre-vote.
            if log.membership.isVoter(id) { campaign(isLeadershipTransfer: true) }
        case .preVoteRequest, .preVoteResponse, .voteRequest, .voteResponse, .appendEntriesResponse,
             .heartbeatResponse, .installSnapshotResponse:
            break
        }
    }

    private mutating func heardFromLeader(_ leader: NodeID) {
        electionElapsedTicks = 0
        leaderID = leader
    }

    private mutating func stepCandidate(_ message: Message) {
        switch message.payload {
        case .appendEntries, .heartbeat, .installSnapshot:
            // §5.2: "If the leader's term ... is at least as large as the candidate's current term,
            // then the candidate recognizes the leader as legitimate and returns to follower state."
            becomeFollower(term: message.term, leader: message.from)
            stepFollower(message)
        case .preVoteResponse(let granted):
            // Granted pre-votes come at the term we would campaign in, rejections at the voter's.
            let expectedTerm = granted ? term + 1 : term
            if role == .preCandidate && message.term == expectedTerm {
                recordVote(from: message.from, granted: granted)
            }
        case .voteResponse(let granted):
            if role == .candidate { recordVote(from: message.from, granted: granted) }
        case .preVoteRequest, .voteRequest, .appendEntriesResponse, .heartbeatResponse,
             .installSnapshotResponse, .timeoutNow:
            break
        }
    }

    private mutating func stepLeader(_ message: Message) {
        guard progress[message.from] != nil else { return }
        progress[message.from]!.recentlyActive = true
        switch message.payload {
        case .appendEntriesResponse(let response):
            handleAppendEntriesResponse(from: message.from, response)
        case .heartbeatResponse(let response):
            handleHeartbeatResponse(from: message.from, response)
        case .installSnapshotResponse(let response):
            handleSnapshotResponse(from: message.from, response)
        case .preVoteRequest, .preVoteResponse, .voteRequest, .voteResponse, .appendEntries,
             .heartbeat, .installSnapshot, .timeoutNow:
            // Another leader in our own term would break election safety; such a message can only
            // be corrupt or replayed input, so it is ignored rather than trusted.
            break
        }
    }

    /// Rejects structurally impossible messages before any state changes: every term and index
    /// below `RaftLimits.receivedValueCeiling` (so no arithmetic on them can overflow, and what
    /// the node adds to them stays below `RaftLimits.valueCeiling`), entries
    /// contiguous and of non-decreasing terms no newer than the message, snapshot chunks inside
    /// their snapshot.
    static func isWellFormed(_ message: Message) -> Bool {
        guard RaftLimits.isReceivable(message.term) else { return false }
        switch message.payload {
        case .appendEntries(let request):
            guard RaftLimits.isReceivable(request.prevLogIndex, request.prevLogTerm, request.leaderCommitIndex),
                  UInt64(request.entries.count) < RaftLimits.receivedValueCeiling - request.prevLogIndex else { return false }
            var expectedIndex = request.prevLogIndex + 1
            var previousTerm = request.prevLogTerm
            for entry in request.entries {
                guard entry.index == expectedIndex, entry.term >= previousTerm, entry.term <= message.term else {
                    return false
                }
                expectedIndex += 1
                previousTerm = entry.term
            }
            return request.prevLogTerm <= message.term
        case .appendEntriesResponse(let response):
            switch response {
            case .accepted(let matchIndex): return RaftLimits.isReceivable(matchIndex)
            case .rejected(let rejectedIndex, let hintIndex, let hintTerm):
                return RaftLimits.isReceivable(rejectedIndex, hintIndex, hintTerm)
            case .staleTerm: return true
            }
        case .preVoteRequest(let request), .voteRequest(let request):
            return RaftLimits.isReceivable(request.lastLogIndex, request.lastLogTerm)
        case .heartbeat(let heartbeat):
            return RaftLimits.isReceivable(heartbeat.commitIndex, heartbeat.readRound)
        case .heartbeatResponse(let response):
            return RaftLimits.isReceivable(response.readRound)
        case .installSnapshot(let chunk):
            // Subtraction, not `offset + count`, which a forged offset near Int.max overflows.
            return chunk.offset >= 0 && chunk.totalBytes >= 0 && chunk.offset <= chunk.totalBytes
                && chunk.data.count <= chunk.totalBytes - chunk.offset
                && RaftLimits.isReceivable(chunk.metadata.index, chunk.metadata.term)
                && chunk.metadata.term <= message.term
        case .installSnapshotResponse(let response):
            return response.bytesReceived >= 0 && RaftLimits.isReceivable(response.snapshotIndex)
        case .preVoteResponse, .voteResponse, .timeoutNow:
            return true
        }
    }

    func makeMessage(to peer: NodeID, term messageTerm: UInt64? = nil, _ payload: Message.Payload) -> Message {
        Message(from: id, to: peer, term: messageTerm ?? term, payload: payload)
    }

    mutating func send(to peer: NodeID, term messageTerm: UInt64? = nil, _ payload: Message.Payload) {
        outbox.append(makeMessage(to: peer, term: messageTerm, payload))
    }

    // MARK: Role changes

    mutating func becomeFollower(term newTerm: UInt64, leader: NodeID?) {
        precondition(newTerm >= term, "becomeFollower(term: \(newTerm)) below current term \(term)")
        if newTerm > term {
            term = newTerm
            votedFor = nil
        }
        role = .follower
        leaderID = leader
        resetRoleState()
    }

    private mutating func becomePreCandidate() {
        precondition(role != .leader, "a leader cannot become a pre-candidate")
        role = .preCandidate
        leaderID = nil
        resetRoleState()
    }

    private mutating func becomeCandidate() {
        precondition(role != .leader, "a leader cannot become a candidate")
        // §5.2: "To begin an election, a follower increments its current term and transitions to
        // candidate state. It then votes for itself".
        term += 1
        votedFor = id
        role = .candidate
        leaderID = nil
        resetRoleState()
    }

    private mutating func becomeLeader() {
        precondition(role == .candidate, "only a candidate becomes leader (role \(role))")
        role = .leader
        leaderID = id
        resetRoleState()
        synchroniseProgressWithMembership()
        // §8: "each leader [must] commit a blank no-op entry into the log at the start of its term"
        // to learn which entries are committed.
        _ = appendAsLeader(.empty)
    }

    private mutating func resetRoleState() {
        resetTimers()
        votesReceived = [:]
        progress = [:]
        transferTarget = nil
        transferElapsedTicks = 0
        uncommittedBytes = 0
        pendingReads = []
        readRoundOpen = false
    }

    private mutating func resetTimers() {
        electionElapsedTicks = 0
        heartbeatElapsedTicks = 0
        // §5.2: "election timeouts are chosen randomly from a fixed interval".
        let spread = UInt64(configuration.electionTimeoutTicks)
        randomizedElectionTimeoutTicks = configuration.electionTimeoutTicks + Int(random.next() % spread)
    }

    // MARK: Elections

    /// Starts a pre-vote round (thesis §9.6) or, when pre-vote is off or leadership is being
    /// transferred to us, a real election (§5.2).
    private mutating func campaign(isLeadershipTransfer: Bool) {
        if configuration.preVoteEnabled && !isLeadershipTransfer {
            becomePreCandidate()
            requestVotes(isLeadershipTransfer: false)
        } else {
            startElection(isLeadershipTransfer: isLeadershipTransfer)
        }
    }

    private mutating func startElection(isLeadershipTransfer: Bool) {
        becomeCandidate()
        requestVotes(isLeadershipTransfer: isLeadershipTransfer)
    }

    private mutating func requestVotes(isLeadershipTransfer: Bool) {
        votesReceived = [id: true]
        if tallyVotes() { return }
        let isPreVote = role == .preCandidate
        let request = VoteRequest(lastLogIndex: log.lastIndex, lastLogTerm: log.lastTerm,
                                  isLeadershipTransfer: isLeadershipTransfer)
        for voter in log.membership.voters where voter != id {
            send(to: voter, term: isPreVote ? term + 1 : term,
                 isPreVote ? .preVoteRequest(request) : .voteRequest(request))
        }
    }

    private mutating func recordVote(from voter: NodeID, granted: Bool) {
        guard log.membership.isVoter(voter), votesReceived[voter] == nil else { return }
        votesReceived[voter] = granted
        _ = tallyVotes()
    }

    /// Acts on the votes so far; returns true when the round is decided.
    private mutating func tallyVotes() -> Bool {
        let voters = log.membership.voters
        let granted = voters.filter { votesReceived[$0] == true }.count
        let rejected = voters.filter { votesReceived[$0] == false }.count
        if granted >= log.membership.quorum {
            if role == .preCandidate {
                startElection(isLeadershipTransfer: false)
            } else {
                becomeLeader()
            }
            return true
        }
        if rejected > voters.count - log.membership.quorum {
            becomeFollower(term: term, leader: nil)
            return true
        }
        return false
    }

    /// Figure 2, RequestVote receiver: "If votedFor is null or candidateId, and candidate's log is
    /// at least as up-to-date as receiver's log, grant vote." A pre-vote is answered by the same
    /// rule without recording anything (thesis §9.6).
    private mutating func handleVoteRequest(from candidate: NodeID, term requestTerm: UInt64,
                                            _ request: VoteRequest, isPreVote: Bool) {
        let canVote = votedFor == candidate
            || (votedFor == nil && leaderID == nil)
            || (isPreVote && requestTerm > term)
        let upToDate = log.isUpToDate(lastIndex: request.lastLogIndex, lastTerm: request.lastLogTerm)
        guard canVote && upToDate else {
            send(to: candidate, isPreVote ? .preVoteResponse(granted: false) : .voteResponse(granted: false))
            return
        }
        if isPreVote {
            send(to: candidate, term: requestTerm, .preVoteResponse(granted: true))
        } else {
            votedFor = candidate
            // §5.2: a follower resets its election timer when it grants a vote.
            electionElapsedTicks = 0
            send(to: candidate, .voteResponse(granted: true))
        }
    }
}
