// Linearizable reads (thesis §6.4) and the Ready/advance hand-off.

extension RaftNode {
    /// Starts a linearizable read (thesis §6.4, ReadIndex). The leader records its commit index as
    /// the read index, then confirms it is still the leader with a round of heartbeats; once a
    /// majority has answered, a `ReadState(index:requestID:)` appears in a `Ready`. The shell serves
    /// the read from its state machine once `appliedIndex >= index`.
    ///
    /// A new leader first waits until it has committed an entry of its own term (thesis §6.4 step
    /// 1), so early requests are queued, up to `pendingReadsMax`. A read whose leader loses
    /// leadership before confirmation is dropped silently: the shell retries after a timeout, or
    /// on the node it learns is leader.
    public mutating func readIndex(requestID: UInt64) -> ReadIndexResult {
        guard role == .leader else { return .notLeader(leaderID: leaderID) }
        guard pendingReads.count < configuration.pendingReadsMax else {
            return .dropped(.tooManyPendingReads(pendingReadsMax: configuration.pendingReadsMax))
        }
        if log.term(at: log.commitIndex) != term {
            pendingReads.append(PendingRead(requestID: requestID, index: nil, round: 0))
            return .pending
        }
        if log.membership.voters == [id] {
            // A single voter is its own majority: nothing to confirm.
            readStates.append(ReadState(index: log.commitIndex, requestID: requestID))
            return .pending
        }
        // Every read registered before the next `Ready` shares one heartbeat round, so a burst of
        // reads costs one message per follower, not one per read.
        openReadRound()
        pendingReads.append(PendingRead(requestID: requestID, index: log.commitIndex, round: readRound))
        return .pending
    }

    /// Sends the heartbeat round that confirms the reads registered since the last `Ready`.
    mutating func closeReadRound() {
        guard readRoundOpen else { return }
        readRoundOpen = false
        if role == .leader && !pendingReads.isEmpty { broadcastHeartbeat() }
    }

    mutating func startReadsAwaitingCommit() {
        guard pendingReads.contains(where: { $0.index == nil }) else { return }
        openReadRound()
        for position in pendingReads.indices where pendingReads[position].index == nil {
            pendingReads[position].index = log.commitIndex
            pendingReads[position].round = readRound
        }
        confirmReads()
    }

    /// A read may only join a round whose heartbeats have not been sent yet: answers to earlier
    /// heartbeats prove nothing about leadership at the time of the read (thesis §6.4 step 3).
    /// `broadcastHeartbeat` closes the round.
    private mutating func openReadRound() {
        guard !readRoundOpen else { return }
        readRound += 1
        readRoundOpen = true
    }

    /// Releases, in order, every read whose heartbeat round a majority of voters has answered.
    mutating func confirmReads() {
        let membership = log.membership
        while let first = pendingReads.first, let index = first.index {
            let acknowledged = membership.voters.filter {
                $0 == id || (progress[$0]?.readRoundAcknowledged ?? 0) >= first.round
            }.count
            guard acknowledged >= membership.quorum else { return }
            readStates.append(ReadState(index: index, requestID: first.requestID))
            pendingReads.removeFirst()
        }
    }

    // MARK: Ready

    /// Whether `ready()` would return a batch.
    public var hasReady: Bool {
        !outbox.isEmpty || !readStates.isEmpty || snapshotToPersist != nil || readRoundOpen
            || log.unstableFromIndex <= log.lastIndex
            || hardState != lastHandedOutHardState
            || appliedHandedOutIndex < log.commitIndex
    }

    /// Takes the next batch of work, or nil when there is none. See `Ready` for what the shell
    /// must do with it; call `advance(_:)` before calling `ready()` again.
    public mutating func ready() -> Ready? {
        precondition(!readyOutstanding, "ready() called again before advance() of the previous Ready")
        guard hasReady else { return nil }
        closeReadRound()
        var batch = Ready()
        let currentHardState = hardState
        if currentHardState != lastHandedOutHardState {
            batch.hardState = currentHardState
            lastHandedOutHardState = currentHardState
        }
        batch.snapshot = snapshotToPersist
        snapshotToPersist = nil
        batch.entries = log.takeUnstableEntries()
        batch.messages = outbox
        outbox = []
        if appliedHandedOutIndex < log.commitIndex {
            batch.committedEntries = log.entries(from: appliedHandedOutIndex + 1,
                                                 bytesMax: configuration.committedEntriesBatchBytesMax,
                                                 through: log.commitIndex)
            appliedHandedOutIndex = batch.committedEntries.last!.index
        }
        batch.readStates = readStates
        readStates = []
        readyOutstanding = true
        return batch
    }

    /// Acknowledges that the shell has fully processed `ready` (persisted, sent, applied).
    public mutating func advance(_ ready: Ready) {
        precondition(readyOutstanding, "advance() without an outstanding Ready")
        readyOutstanding = false
        if let snapshot = ready.snapshot { appliedIndex = max(appliedIndex, snapshot.metadata.index) }
        if let last = ready.committedEntries.last { appliedIndex = max(appliedIndex, last.index) }
    }
}

public enum ReadIndexResult: Equatable, Sendable {
    /// The read is under way; its `ReadState` will appear in a later `Ready` (or in the next one).
    case pending
    case notLeader(leaderID: NodeID?)
    case dropped(DropReason)
}
