/// Tunables of one Raft server. Every relation between them is checked when the value is made, so
/// a `RaftConfiguration` that exists is a valid one (the properties are `let` for that reason).
///
/// Time is counted in ticks: the shell calls `RaftNode.tick()` at a fixed interval of its choosing
/// (for example every 100 ms), and the core never reads a clock.
public struct RaftConfiguration: Equatable, Sendable {
    /// A follower that hears nothing from a leader for a random time drawn from
    /// [electionTimeoutTicks, 2 × electionTimeoutTicks) starts an election (§5.2: "randomized
    /// election timeouts to ensure that split votes are rare"). A leader also uses it as the
    /// check-quorum window and the leadership-transfer deadline.
    public let electionTimeoutTicks: Int
    /// How often a leader sends heartbeats. Must be well below the election timeout (§5.6:
    /// broadcastTime ≪ electionTimeout); we require strictly below and recommend a tenth.
    public let heartbeatIntervalTicks: Int
    /// Thesis §9.6: a server first asks whether it could win before it increments its term, so a
    /// server that rejoins from a partition cannot disrupt the cluster.
    public let preVoteEnabled: Bool
    /// Thesis §6.2: a leader that has not heard from a majority within an election timeout steps
    /// down. Also enables the "ignore (pre)votes while a leader is known to be alive" rule of
    /// thesis §4.2.3, which is only sound when leaders step down on their own.
    public let checkQuorumEnabled: Bool
    /// The largest number of entry bytes in one AppendEntries message (at least one entry is
    /// always sent, and `entryBytesMax` bounds that one).
    public let appendEntriesBatchBytesMax: Int
    /// Per follower in the replicate state: AppendEntries messages sent but not yet acknowledged.
    public let inflightMessagesMax: Int
    /// Per follower in the replicate state: entry bytes sent but not yet acknowledged.
    public let inflightBytesMax: Int
    /// A leader refuses proposals while its uncommitted entries exceed this many bytes, so a
    /// leader that cannot commit (no quorum) does not grow its log without bound.
    public let uncommittedEntriesBytesMax: Int
    /// The largest command a proposal may carry.
    public let entryBytesMax: Int
    /// The largest number of entry bytes handed to the application in one `Ready` (at least one
    /// entry is always handed out).
    public let committedEntriesBatchBytesMax: Int
    /// InstallSnapshot is sent in chunks of at most this many bytes, one chunk in flight per follower.
    public let snapshotChunkBytesMax: Int
    /// A follower refuses a snapshot that announces more bytes than this.
    public let snapshotBytesMax: Int
    /// ReadIndex requests waiting for their heartbeat round (or for the leader's first commit).
    public let pendingReadsMax: Int
    /// A learner is promoted only when its log is within this many entries of the leader's.
    public let learnerPromotionLagEntriesMax: Int

    public init(
        electionTimeoutTicks: Int = 10,
        heartbeatIntervalTicks: Int = 1,
        preVoteEnabled: Bool = true,
        checkQuorumEnabled: Bool = true,
        appendEntriesBatchBytesMax: Int = 256 * 1024,
        inflightMessagesMax: Int = 64,
        inflightBytesMax: Int = 1024 * 1024,
        uncommittedEntriesBytesMax: Int = 8 * 1024 * 1024,
        entryBytesMax: Int = 64 * 1024,
        committedEntriesBatchBytesMax: Int = 1024 * 1024,
        snapshotChunkBytesMax: Int = 256 * 1024,
        snapshotBytesMax: Int = 1024 * 1024 * 1024,
        pendingReadsMax: Int = 1024,
        learnerPromotionLagEntriesMax: Int = 64
    ) throws(RaftConfigurationError) {
        let positives: [(String, Int)] = [
            ("electionTimeoutTicks", electionTimeoutTicks),
            ("heartbeatIntervalTicks", heartbeatIntervalTicks),
            ("appendEntriesBatchBytesMax", appendEntriesBatchBytesMax),
            ("inflightMessagesMax", inflightMessagesMax),
            ("inflightBytesMax", inflightBytesMax),
            ("uncommittedEntriesBytesMax", uncommittedEntriesBytesMax),
            ("entryBytesMax", entryBytesMax),
            ("committedEntriesBatchBytesMax", committedEntriesBatchBytesMax),
            ("snapshotChunkBytesMax", snapshotChunkBytesMax),
            ("snapshotBytesMax", snapshotBytesMax),
            ("pendingReadsMax", pendingReadsMax),
        ]
        for (name, value) in positives where value <= 0 {
            throw .notPositive(name: name, value: value)
        }
        if learnerPromotionLagEntriesMax < 0 {
            throw .notPositive(name: "learnerPromotionLagEntriesMax", value: learnerPromotionLagEntriesMax)
        }
        guard electionTimeoutTicks > heartbeatIntervalTicks else {
            throw .electionTimeoutNotAboveHeartbeatInterval(
                electionTimeoutTicks: electionTimeoutTicks, heartbeatIntervalTicks: heartbeatIntervalTicks)
        }
        // One maximal entry must fit in one batch and in the window, or it could never be sent.
        let entryLimit = entryBytesMax + Entry.overheadBytes
        for (name, limit) in [
            ("appendEntriesBatchBytesMax", appendEntriesBatchBytesMax),
            ("inflightBytesMax", inflightBytesMax),
            ("uncommittedEntriesBytesMax", uncommittedEntriesBytesMax),
        ] where limit < entryLimit {
            throw .entryLargerThanLimit(limitName: name, limit: limit, entryBytesMax: entryBytesMax)
        }
        guard snapshotChunkBytesMax <= snapshotBytesMax else {
            throw .snapshotChunkLargerThanSnapshot(
                snapshotChunkBytesMax: snapshotChunkBytesMax, snapshotBytesMax: snapshotBytesMax)
        }
        self.electionTimeoutTicks = electionTimeoutTicks
        self.heartbeatIntervalTicks = heartbeatIntervalTicks
        self.preVoteEnabled = preVoteEnabled
        self.checkQuorumEnabled = checkQuorumEnabled
        self.appendEntriesBatchBytesMax = appendEntriesBatchBytesMax
        self.inflightMessagesMax = inflightMessagesMax
        self.inflightBytesMax = inflightBytesMax
        self.uncommittedEntriesBytesMax = uncommittedEntriesBytesMax
        self.entryBytesMax = entryBytesMax
        self.committedEntriesBatchBytesMax = committedEntriesBatchBytesMax
        self.snapshotChunkBytesMax = snapshotChunkBytesMax
        self.snapshotBytesMax = snapshotBytesMax
        self.pendingReadsMax = pendingReadsMax
        self.learnerPromotionLagEntriesMax = learnerPromotionLagEntriesMax
    }
}

public enum RaftConfigurationError: Error, Equatable, Sendable {
    case notPositive(name: String, value: Int)
    case electionTimeoutNotAboveHeartbeatInterval(electionTimeoutTicks: Int, heartbeatIntervalTicks: Int)
    case entryLargerThanLimit(limitName: String, limit: Int, entryBytesMax: Int)
    case snapshotChunkLargerThanSnapshot(snapshotChunkBytesMax: Int, snapshotBytesMax: Int)
}
