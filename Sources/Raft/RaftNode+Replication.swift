// Log replication (§5.3), commitment (§5.4.2) and the flow control around them.

extension RaftNode {
    /// Proposes a command. Only a leader accepts; a follower answers with the leader it knows so
    /// that the shell can forward the request (§8: "If the client's first choice is not the
    /// leader, that server will reject the client's request and supply information about the most
    /// recent leader it has heard from").
    ///
    /// `stamp` identifies the request for de-duplication. Raft may commit the same command twice
    /// (a client retries after a leader crash), so exactly-once semantics live in the replicated
    /// state machine, which must skip stamps it has already applied (thesis §6.3); see
    /// `ClientSessionTable`.
    public mutating func propose(_ data: [UInt8], stamp: ClientStamp? = nil) -> ProposeResult {
        guard role == .leader else { return .notLeader(leaderID: leaderID) }
        guard transferTarget == nil else { return .dropped(.leadershipTransferInProgress) }
        guard data.count <= configuration.entryBytesMax else {
            return .dropped(.entryTooLarge(bytes: data.count, entryBytesMax: configuration.entryBytesMax))
        }
        let size = Entry.overheadBytes + data.count
        guard uncommittedBytes + size <= configuration.uncommittedEntriesBytesMax else {
            return .dropped(.uncommittedLogFull(uncommittedBytes: uncommittedBytes,
                                                uncommittedEntriesBytesMax: configuration.uncommittedEntriesBytesMax))
        }
        return appendAsLeader(.command(data: data, stamp: stamp))
    }

    mutating func appendAsLeader(_ payload: Entry.Payload) -> ProposeResult {
        precondition(role == .leader, "appendAsLeader as \(role)")
        let entry = Entry(term: term, index: log.lastIndex + 1, payload: payload)
        log.append([entry])
        uncommittedBytes += entry.sizeBytes
        if case .membershipChange = payload { synchroniseProgressWithMembership() }
        // A single-voter cluster commits on its own.
        maybeCommit()
        broadcastAppend()
        return .accepted(index: entry.index, term: entry.term)
    }

    // MARK: Leader side

    mutating func broadcastAppend() {
        guard role == .leader else { return }
        for peer in progress.keys.sorted() {
            sendAppend(to: peer, sendIfEmpty: false)
        }
    }

    /// Sends the next AppendEntries to `peer` if its flow control allows; returns whether a
    /// message carrying entries went out (callers loop on it to fill the in-flight window).
    @discardableResult
    mutating func sendAppend(to peer: NodeID, sendIfEmpty: Bool) -> Bool {
        guard var peerProgress = progress[peer], !peerProgress.isPaused else { return false }
        let prevLogIndex = peerProgress.nextIndex - 1
        guard let prevLogTerm = log.term(at: prevLogIndex) else {
            // §7: the entries the follower needs were discarded; send the snapshot instead.
            precondition(prevLogIndex < log.snapshotIndex, "nextIndex \(peerProgress.nextIndex) beyond log \(log.lastIndex)")
            startSnapshot(to: peer)
            return false
        }
        var bytesMax = configuration.appendEntriesBatchBytesMax
        if peerProgress.state == .replicate { bytesMax = min(bytesMax, peerProgress.inflight.bytesAvailable) }
        let entries = log.entries(from: peerProgress.nextIndex, bytesMax: bytesMax)
        if entries.isEmpty && !sendIfEmpty { return false }
        send(to: peer, .appendEntries(AppendEntries(prevLogIndex: prevLogIndex, prevLogTerm: prevLogTerm,
                                                    entries: entries, leaderCommitIndex: log.commitIndex)))
        switch peerProgress.state {
        case .replicate:
            if let last = entries.last {
                peerProgress.inflight.add(lastIndex: last.index, bytes: entries.reduce(0) { $0 + $1.sizeBytes })
                peerProgress.nextIndex = last.index + 1
            }
        case .probe:
            peerProgress.probeSent = true
        case .snapshot:
            preconditionFailure("sendAppend in snapshot state to \(peer)")
        }
        progress[peer] = peerProgress
        return !entries.isEmpty
    }

    mutating func handleAppendEntriesResponse(from peer: NodeID, _ response: AppendEntriesResponse) {
        switch response {
        case .accepted(let matchIndex):
            // A correct follower of this term never claims more than we sent it.
            guard matchIndex <= log.lastIndex else { return }
            let previous = progress[peer]!
            let updated = progress[peer]!.acknowledge(matchIndex: matchIndex)
            switch previous.state {
            case .probe:
                if updated || previous.matchIndex == matchIndex { progress[peer]!.becomeReplicate() }
            case .snapshot(let index, _, _):
                if progress[peer]!.matchIndex >= index { progress[peer]!.becomeReplicate() }
            case .replicate:
                break
            }
            if updated { maybeCommit() }
            guard role == .leader, progress[peer] != nil else { return }
            while sendAppend(to: peer, sendIfEmpty: false) {}
            if peer == transferTarget && progress[peer]!.matchIndex == log.lastIndex {
                send(to: peer, .timeoutNow)
            }
        case .rejected(let rejectedIndex, let hintIndex, let hintTerm):
            let hintNextIndex = log.lastIndex(atOrBefore: hintIndex, withTermAtMost: hintTerm) + 1
            if progress[peer]!.backtrack(rejectedIndex: rejectedIndex, hintNextIndex: hintNextIndex) {
                sendAppend(to: peer, sendIfEmpty: true)
            }
        case .staleTerm:
            // Only sent with a higher term, which made us a follower before we got here.
            break
        }
    }

    mutating func handleHeartbeatResponse(from peer: NodeID, _ response: HeartbeatResponse) {
        if response.readRound > progress[peer]!.readRoundAcknowledged {
            progress[peer]!.readRoundAcknowledged = response.readRound
            confirmReads()
        }
        var peerProgress = progress[peer]!
        let stalled = peerProgress.matchIndex == peerProgress.matchIndexAtLastHeartbeatResponse
        peerProgress.matchIndexAtLastHeartbeatResponse = peerProgress.matchIndex
        if peerProgress.matchIndex < log.lastIndex {
            switch peerProgress.state {
            case .probe:
                // The probe or its answer may have been lost: probe again.
                peerProgress.probeSent = false
            case .replicate:
                // No acknowledgement for a whole heartbeat interval: appends (or their answers)
                // were probably lost. Fall back to probing from the known match point, which
                // retransmits what is missing.
                if stalled { peerProgress.becomeProbe() }
            case .snapshot:
                break
            }
        }
        progress[peer] = peerProgress
        if peerProgress.matchIndex < log.lastIndex { sendAppend(to: peer, sendIfEmpty: true) }
    }

    mutating func broadcastHeartbeat() {
        // These heartbeats confirm every read registered so far; later reads need a new round.
        readRoundOpen = false
        for peer in progress.keys.sorted() {
            // Announce only what the follower is known to hold (see `Heartbeat.commitIndex`).
            let commit = min(progress[peer]!.matchIndex, log.commitIndex)
            send(to: peer, .heartbeat(Heartbeat(commitIndex: commit, readRound: readRound)))
        }
    }

    /// §5.4.2: "Raft never commits log entries from previous terms by counting replicas. Only log
    /// entries from the leader's current term are committed by counting replicas".
    mutating func maybeCommit() {
        let membership = log.membership
        guard role == .leader, !membership.voters.isEmpty else { return }
        // A leader that is removing itself still leads but does not count itself (thesis §4.2.2).
        let matches = membership.voters.map { $0 == id ? log.lastIndex : (progress[$0]?.matchIndex ?? 0) }
        let quorumIndex = matches.sorted(by: >)[membership.quorum - 1]
        guard quorumIndex > log.commitIndex, log.term(at: quorumIndex) == term else { return }
        let previousCommit = log.commitIndex
        let firstCommitInTerm = log.term(at: previousCommit) != term
        log.commit(to: quorumIndex)
        for index in (previousCommit + 1)...quorumIndex where log.term(at: index) == term {
            uncommittedBytes -= log.entry(at: index)!.sizeBytes
        }
        uncommittedBytes = max(0, uncommittedBytes)
        if firstCommitInTerm { startReadsAwaitingCommit() }
        guard previousCommit < log.membershipIndex && log.membershipIndex <= log.commitIndex else { return }
        // A membership change just committed: stop replicating to servers it removed.
        synchroniseProgressWithMembership()
        if !log.membership.isVoter(id) { stepDownAfterRemoval() }
    }

    /// Thesis §4.2.2: a leader removed from the configuration "steps down once the Cnew entry is
    /// committed". Rather than leave the cluster without a leader for an election timeout, it
    /// hands over to an up-to-date voter with TimeoutNow, as thesis §3.10 suggests for this case.
    private mutating func stepDownAfterRemoval() {
        let successor = log.membership.voters.first { progress[$0]?.matchIndex == log.lastIndex }
        if let successor { send(to: successor, .timeoutNow) }
        becomeFollower(term: term, leader: nil)
    }

    // MARK: Follower side

    /// Figure 2, AppendEntries receiver rules 2 to 5.
    mutating func handleAppendEntries(from leader: NodeID, _ request: AppendEntries) {
        if request.prevLogIndex < log.commitIndex {
            // Everything through our commit index matches the leader (leader completeness), so tell
            // it where to continue instead of rejecting.
            send(to: leader, .appendEntriesResponse(.accepted(matchIndex: log.commitIndex)))
            return
        }
        guard log.matches(index: request.prevLogIndex, term: request.prevLogTerm) else {
            // Rule 2: "Reply false if log doesn't contain an entry at prevLogIndex whose term
            // matches prevLogTerm", with a hint for fast backtracking.
            let hintIndex = log.lastIndex(atOrBefore: request.prevLogIndex, withTermAtMost: request.prevLogTerm)
            send(to: leader, .appendEntriesResponse(.rejected(
                rejectedIndex: request.prevLogIndex, hintIndex: hintIndex, hintTerm: log.term(at: hintIndex) ?? 0)))
            return
        }
        guard log.membershipProblem(in: request.entries) == nil else {
            malformedMessagesDropped += 1
            return
        }
        let lastNewIndex = log.appendReplacingConflicts(request.entries)
        // Rule 5: "set commitIndex = min(leaderCommit, index of last new entry)".
        log.commit(to: min(request.leaderCommitIndex, lastNewIndex))
        send(to: leader, .appendEntriesResponse(.accepted(matchIndex: lastNewIndex)))
    }

    mutating func handleHeartbeat(from leader: NodeID, _ heartbeat: Heartbeat) {
        log.commit(to: min(heartbeat.commitIndex, log.lastIndex))
        send(to: leader, .heartbeatResponse(HeartbeatResponse(readRound: heartbeat.readRound)))
    }

    // MARK: Membership (thesis §4.1)

    /// Proposes one single-server membership change. It takes effect on each server as soon as
    /// that server appends it (thesis §4.1: "a server always uses the latest configuration in its
    /// log, regardless of whether the entry is committed"), and only one may be uncommitted.
    public mutating func proposeMembershipChange(_ change: MembershipChange) -> ProposeResult {
        guard role == .leader else { return .notLeader(leaderID: leaderID) }
        guard transferTarget == nil else { return .dropped(.leadershipTransferInProgress) }
        guard log.membershipIndex <= log.commitIndex else {
            return .dropped(.membershipChangeInProgress(pendingIndex: log.membershipIndex))
        }
        guard log.term(at: log.commitIndex) == term else { return .dropped(.leaderHasNotCommittedInTerm) }
        if let rejection = log.membership.rejection(of: change) {
            return .dropped(.invalidMembershipChange(rejection))
        }
        if case .promoteLearner(let learner) = change {
            // Thesis §4.2.1: promote only once the learner has caught up, or the new majority
            // could wait on a server that is still copying the log.
            let matchIndex = progress[learner]?.matchIndex ?? 0
            guard matchIndex + UInt64(configuration.learnerPromotionLagEntriesMax) >= log.lastIndex else {
                return .dropped(.invalidMembershipChange(.learnerNotCaughtUp(
                    learner, matchIndex: matchIndex, lastIndex: log.lastIndex)))
            }
        }
        return appendAsLeader(.membershipChange(change))
    }

    /// Leaders keep one `Progress` per member other than themselves. Servers removed by a change
    /// that is not committed yet keep theirs, so that they receive the change and learn of their
    /// removal (they no longer count towards any majority).
    mutating func synchroniseProgressWithMembership() {
        var members = log.membership.members
        if log.membershipIndex > log.commitIndex, let previous = log.membershipBeforeLatestChange {
            members += previous.members.filter { !members.contains($0) }
        }
        members.removeAll { $0 == id }
        for peer in progress.keys where !members.contains(peer) {
            progress[peer] = nil
            if transferTarget == peer { transferTarget = nil }
        }
        for peer in members where progress[peer] == nil {
            progress[peer] = Progress(nextIndex: log.lastIndex + 1,
                                      inflightMessagesMax: configuration.inflightMessagesMax,
                                      inflightBytesMax: configuration.inflightBytesMax)
        }
    }

    // MARK: Leadership transfer (thesis §3.10)

    /// Hands leadership to `target`: the leader stops accepting proposals, brings the target's log
    /// up to date, then sends it TimeoutNow so that it starts an election at once. Aborted after
    /// one election timeout.
    public mutating func transferLeadership(to target: NodeID) -> TransferLeadershipResult {
        guard role == .leader else { return .notLeader(leaderID: leaderID) }
        guard target != id else { return .alreadyLeader }
        guard log.membership.isVoter(target), progress[target] != nil else {
            return .dropped(.transferTargetNotVoter(target))
        }
        if transferTarget == target { return .started }
        transferTarget = target
        transferElapsedTicks = 0
        if progress[target]!.matchIndex == log.lastIndex {
            send(to: target, .timeoutNow)
        } else {
            sendAppend(to: target, sendIfEmpty: true)
        }
        return .started
    }
}

public enum TransferLeadershipResult: Equatable, Sendable {
    case started
    case alreadyLeader
    case notLeader(leaderID: NodeID?)
    case dropped(DropReason)
}
