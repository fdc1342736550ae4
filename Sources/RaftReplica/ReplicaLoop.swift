import Logging
import NIOCore
import Raft
import Storage
import Transport

/// The replica's mutable state, confined to its event loop (held in a `NIOLoopBoundBox`).
final class ReplicaLoop {
    struct Pending {
        var term: UInt64
        var completion: @Sendable (Result<AppliedProposal, ProposalError>) -> Void
    }

    let configuration: ReplicaConfiguration
    let inbox: Inbox
    let logger: Logger
    let eventLoop: any EventLoop
    var node: RaftNode
    var log: WriteAheadLog
    var stateMachine: StateMachine
    var transport: Transport?
    var ticker: RepeatedTask?
    /// Proposals appended to the log and not yet applied, by index.
    var pending: [UInt64: Pending] = [:]
    /// Read barriers by request ID: waiting for the core's confirmation (`index` nil), then for
    /// the apply of everything through their read index. Bounded by the inbox's proposal limit.
    var pendingReads: [UInt64: PendingRead] = [:]
    var nextReadID: UInt64 = 0

    struct PendingRead {
        var completion: @Sendable (Result<AppliedProposal, ProposalError>) -> Void
        var index: UInt64?
        /// The core drops a read silently when its leader loses the role before a majority
        /// confirmed it; this bound answers it instead.
        var ticksLeft: Int
    }
    var failure: ReplicaFailure?
    /// Told of `failure` once; finished when the replica closes (`RaftReplica.failures`).
    let failures: AsyncStream<ReplicaFailure>.Continuation
    /// The hard state last made durable, for `Ready.messagesMaySendBeforePersisting`.
    var durableHardState: HardState
    var isClosed = false
    /// The applied index at which the last snapshot was taken or refused (see `snapshotIfDue`).
    var lastSnapshotAttemptIndex: UInt64 = 0
    var snapshotsTaken = 0
    var snapshotsInstalled = 0
    /// The leadership transfer this replica started and waits on; at most one at a time.
    var pendingTransfer: PendingTransfer?

    struct PendingTransfer {
        var target: NodeID
        var ticksWaited = 0
        var completion: @Sendable (Result<Void, LeadershipTransferError>) -> Void
    }

    init(configuration: ReplicaConfiguration, inbox: Inbox, logger: Logger, eventLoop: any EventLoop,
         node: RaftNode, log: WriteAheadLog, durableHardState: HardState, stateMachine: StateMachine,
         failures: AsyncStream<ReplicaFailure>.Continuation) {
        self.configuration = configuration
        self.failures = failures
        self.inbox = inbox
        self.logger = logger
        self.eventLoop = eventLoop
        self.durableHardState = durableHardState
        self.node = node
        self.log = log
        self.stateMachine = stateMachine
    }

    static func open(
        configuration: ReplicaConfiguration, inbox: Inbox, logger: Logger, stateMachine: StateMachine,
        eventLoop: any EventLoop, failures: AsyncStream<ReplicaFailure>.Continuation
    ) -> Result<NIOLoopBoundBox<ReplicaLoop>, ReplicaError> {
        let log: WriteAheadLog
        let recovered: PersistentState
        let initialState: PersistentState = configuration.foundingVoters.isEmpty
            ? .joining() : .bootstrap(voters: configuration.foundingVoters)
        do {
            (log, recovered) = try WriteAheadLog.open(
                directory: configuration.dataDirectory, configuration: configuration.writeAheadLog,
                initialState: initialState)
        } catch {
            return .failure(.storage(error))
        }
        let node: RaftNode
        do {
            node = try RaftNode(id: configuration.id, configuration: configuration.raft, restoring: recovered,
                                randomSeed: configuration.randomSeed)
        } catch {
            log.close()
            return .failure(.unusableState("\(error)"))
        }
        // The core hands out again every committed entry after the snapshot; the state machine
        // starts from the snapshot itself.
        if recovered.snapshot.metadata.index > 0 {
            do {
                try stateMachine.restore(recovered.snapshot)
            } catch {
                log.close()
                return .failure(.snapshotNotRestored(index: recovered.snapshot.metadata.index, reason: "\(error)"))
            }
        }
        logger.info("replica recovered", metadata: [
            "id": "\(configuration.id)", "term": "\(recovered.hardState.term)",
            "lastIndex": "\(node.lastIndex)", "commitIndex": "\(node.commitIndex)",
        ])
        let loop = ReplicaLoop(configuration: configuration, inbox: inbox, logger: logger, eventLoop: eventLoop,
                               node: node, log: log, durableHardState: recovered.hardState,
                               stateMachine: stateMachine, failures: failures)
        loop.lastSnapshotAttemptIndex = recovered.snapshot.metadata.index
        return .success(NIOLoopBoundBox(loop, eventLoop: eventLoop))
    }

    func begin(transport: Transport) {
        self.transport = transport
        guard !isClosed else { return }
        let interval = configuration.tickInterval
        let box = NIOLoopBoundBox(self, eventLoop: eventLoop)
        ticker = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            box.value.tick()
        }
    }

    var isRunning: Bool { !isClosed && failure == nil && transport != nil }

    // MARK: Inputs

    func tick() {
        guard isRunning else { return }
        node.tick()
        pendingTransfer?.ticksWaited += 1
        expireReads()
        handleReadies()
    }

    // MARK: Read barriers (thesis §6.4)

    /// Registers a read with the core; returns how many requests it answered at once (0 or 1).
    func startRead(_ completion: @escaping @Sendable (Result<AppliedProposal, ProposalError>) -> Void) -> Int {
        nextReadID += 1
        switch node.readIndex(requestID: nextReadID) {
        case .pending:
            pendingReads[nextReadID] = PendingRead(completion: completion, index: nil,
                                                   ticksLeft: 2 * configuration.raft.electionTimeoutTicks)
            return 0
        case .notLeader(let leaderID):
            completion(.failure(.notLeader(leaderID: leaderID)))
            return 1
        case .dropped(let reason):
            completion(.failure(.dropped(reason)))
            return 1
        }
    }

    /// Answers the confirmed reads whose index this replica has applied.
    func completeReads() {
        guard !pendingReads.isEmpty else { return }
        let applied = node.appliedIndex
        let done = pendingReads.filter { $0.value.index.map { $0 <= applied } ?? false }
        guard !done.isEmpty else { return }
        for id in done.keys.sorted() {
            let read = pendingReads.removeValue(forKey: id)!
            read.completion(.success(AppliedProposal(index: read.index!, term: node.term, result: [])))
        }
        inbox.proposalsAnswered(done.count)
    }

    func expireReads() {
        guard !pendingReads.isEmpty else { return }
        var expired: [UInt64] = []
        for id in pendingReads.keys {
            pendingReads[id]!.ticksLeft -= 1
            if pendingReads[id]!.ticksLeft <= 0 && pendingReads[id]!.index == nil { expired.append(id) }
        }
        for id in expired.sorted() { pendingReads.removeValue(forKey: id)!.completion(.failure(.readNotConfirmed)) }
        inbox.proposalsAnswered(expired.count)
    }

    func failPendingReads() {
        let waiting = pendingReads
        pendingReads = [:]
        inbox.proposalsAnswered(waiting.count)
        for id in waiting.keys.sorted() { waiting[id]!.completion(.failure(.stopped)) }
    }

    /// Feeds everything the inbox holds to the core, then handles the resulting Ready batches.
    func turn() {
        let (messages, proposals) = inbox.take()
        guard isRunning else {
            inbox.proposalsAnswered(proposals.count)
            for proposal in proposals { proposal.completion(.failure(.stopped)) }
            return
        }
        for message in messages { node.step(message) }
        var answered = 0
        for proposal in proposals {
            let result: ProposeResult
            switch proposal.kind {
            case .command(let data, let stamp): result = node.propose(data, stamp: stamp)
            case .membershipChange(let change): result = node.proposeMembershipChange(change)
            case .read:
                answered += startRead(proposal.completion)
                continue
            }
            switch result {
            case .accepted(let index, let term):
                // An index can be reused only after the entry there was replaced; the earlier
                // proposal then lost it.
                if let replaced = pending.updateValue(Pending(term: term, completion: proposal.completion), forKey: index) {
                    answered += 1
                    replaced.completion(.failure(.superseded(index: index, term: replaced.term)))
                }
            case .notLeader(let leaderID):
                answered += 1
                proposal.completion(.failure(.notLeader(leaderID: leaderID)))
            case .dropped(let reason):
                answered += 1
                proposal.completion(.failure(.dropped(reason)))
            }
        }
        inbox.proposalsAnswered(answered)
        handleReadies()
    }

    // MARK: Ready

    /// Handles up to `readyBatchesPerTurnMax` batches, then yields the loop if more are waiting.
    func handleReadies() {
        defer { settleTransfer() }
        for _ in 0..<configuration.readyBatchesPerTurnMax {
            guard isRunning, let ready = node.ready() else { return }
            handle(ready)
            snapshotIfDue()
        }
        if isRunning && node.hasReady {
            eventLoop.execute { [box = NIOLoopBoundBox(self, eventLoop: eventLoop)] in box.value.handleReadies() }
        }
    }

    /// Carries out one Ready in the order of its contract (see `Ready`). A leader's replication
    /// leaves before its own fsync (thesis §10.2.1), so the leader's and the followers' syncs
    /// overlap; this is safe because the next Ready is taken only after this one's write returns.
    func handle(_ ready: Ready) {
        let sendsEarly = ready.messagesMaySendBeforePersisting(durableHardState: durableHardState)
        if sendsEarly { transport?.send(ready.messages) }
        let batch = WriteBatch(ready)
        if !batch.isEmpty {
            do {
                try log.append(batch)
            } catch {
                fail(.storage(error))
                return
            }
        }
        if let state = ready.hardState { durableHardState = state }
        if !sendsEarly { transport?.send(ready.messages) }
        if let snapshot = ready.snapshot {
            do {
                try stateMachine.restore(snapshot)
            } catch {
                // The snapshot is already durable in the log, so a restart meets it again and
                // refuses to start (`ReplicaError.snapshotNotRestored`): loud, not silent.
                fail(.snapshotNotRestored(index: snapshot.metadata.index, reason: "\(error)"))
                return
            }
            snapshotsInstalled += 1
            lastSnapshotAttemptIndex = snapshot.metadata.index
        }
        var answered = 0
        for entry in ready.committedEntries {
            let result = stateMachine.apply(entry)
            guard let waiting = pending.removeValue(forKey: entry.index) else { continue }
            answered += 1
            if waiting.term == entry.term {
                waiting.completion(.success(AppliedProposal(index: entry.index, term: entry.term, result: result)))
            } else {
                waiting.completion(.failure(.superseded(index: entry.index, term: waiting.term)))
            }
        }
        inbox.proposalsAnswered(answered)
        for state in ready.readStates { pendingReads[state.requestID]?.index = state.index }
        node.advance(ready)
        completeReads()
    }

    // MARK: Snapshots (§7)

    /// Takes a snapshot once `snapshotEveryEntries` entries were applied since the last one: the
    /// state machine encodes its state, the core compacts its in-memory log behind it, and the WAL
    /// writes the snapshot file atomically, makes its marker durable and removes the segments and
    /// the older snapshot it covers (`WriteAheadLog.compact(through:)`).
    ///
    /// Run between two Readies, after `advance`: the state machine has applied exactly through
    /// `node.appliedIndex`, and every applied entry is already in the WAL (entries are written
    /// before they are applied), as `compact` requires. The core may send the new snapshot to a
    /// lagging follower before the WAL has made it durable here; that is safe, since it covers
    /// only committed entries and the follower makes its own copy durable before it acknowledges.
    func snapshotIfDue() {
        guard isRunning, let every = configuration.snapshotEveryEntries, let capture = stateMachine.snapshot else { return }
        let appliedIndex = node.appliedIndex
        guard appliedIndex >= max(node.snapshotMetadata.index, lastSnapshotAttemptIndex) + UInt64(every) else { return }
        lastSnapshotAttemptIndex = appliedIndex
        let data = capture()
        let bytesMax = min(configuration.raft.snapshotBytesMax, configuration.writeAheadLog.snapshotBytesMax)
        guard data.count <= bytesMax else {
            // Refused, not fatal: the log keeps growing until a later snapshot fits, which the
            // operator must see.
            logger.error("state machine snapshot too large; log not compacted", metadata: [
                "id": "\(configuration.id)", "bytes": "\(data.count)", "snapshotBytesMax": "\(bytesMax)",
                "appliedIndex": "\(appliedIndex)",
            ])
            return
        }
        let snapshot: Snapshot
        do {
            snapshot = try node.createSnapshot(at: appliedIndex, data: data)
        } catch {
            preconditionFailure("createSnapshot at applied index \(appliedIndex) refused: \(error)")
        }
        do {
            try log.compact(through: snapshot)
        } catch {
            fail(.storage(error))
            return
        }
        snapshotsTaken += 1
        if let failure = log.cleanupFailure {
            logger.warning("old WAL files not removed after snapshot; retried at the next one", metadata: [
                "id": "\(configuration.id)", "error": "\(failure)",
            ])
        }
    }

    // MARK: Leadership transfer (thesis §3.10)

    /// Leadership transfers wait at most this many ticks for a leader once started: the core's
    /// own deadline (one election timeout) plus a full randomised election after it.
    var transferWaitTicksMax: Int { 4 * configuration.raft.electionTimeoutTicks }

    func transferLeadership(to target: NodeID, completion: @escaping @Sendable (Result<Void, LeadershipTransferError>) -> Void) {
        guard isRunning else { return completion(.failure(.stopped)) }
        if let pending = pendingTransfer { return completion(.failure(.transferInProgress(target: pending.target))) }
        switch node.transferLeadership(to: target) {
        case .alreadyLeader:
            completion(.success(()))
        case .notLeader(let leaderID):
            completion(.failure(.notLeader(leaderID: leaderID)))
        case .dropped(let reason):
            completion(.failure(.dropped(reason)))
        case .started:
            pendingTransfer = PendingTransfer(target: target, completion: completion)
            handleReadies()
        }
    }

    /// Answers the pending transfer once its outcome is known on this replica.
    func settleTransfer() {
        guard let pending = pendingTransfer else { return }
        let outcome: Result<Void, LeadershipTransferError>
        if node.role == .leader {
            // Still leading: either still handing over, or the core gave up (thesis §3.10: "the
            // prior leader aborts the transfer and resumes accepting client requests").
            guard node.leadershipTransferTarget != pending.target else { return }
            outcome = .failure(.aborted)
        } else if let leaderID = node.leaderID {
            outcome = leaderID == pending.target ? .success(()) : .failure(.anotherLeaderElected(leaderID))
        } else {
            guard pending.ticksWaited >= transferWaitTicksMax else { return }
            outcome = .failure(.noLeaderElected)
        }
        pendingTransfer = nil
        pending.completion(outcome)
    }

    func failPendingTransfer() {
        guard let pending = pendingTransfer else { return }
        pendingTransfer = nil
        pending.completion(.failure(.stopped))
    }

    /// After a failed write or sync the log refuses further use (see `StorageError.unusableAfterFailure`),
    /// and so must the replica: it stops taking part rather than vote or acknowledge without a
    /// disk. Likewise after a snapshot that did not restore. The owner learns it from `failures`.
    func fail(_ reason: ReplicaFailure) {
        guard failure == nil else { return }
        failure = reason
        logger.critical("replica stops taking part: \(reason)", metadata: ["id": "\(configuration.id)"])
        ticker?.cancel()
        failPending()
        failPendingReads()
        failPendingTransfer()
        failures.yield(reason)
    }

    func failPending() {
        let waiting = pending
        pending = [:]
        inbox.proposalsAnswered(waiting.count)
        for index in waiting.keys.sorted() { waiting[index]!.completion(.failure(.stopped)) }
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        ticker?.cancel()
        ticker = nil
        failPending()
        failPendingReads()
        failPendingTransfer()
        for proposal in inbox.close() { proposal.completion(.failure(.stopped)) }
        log.close()
        failures.finish()
    }

    // MARK: Inspection

    func status() -> ReplicaStatus {
        ReplicaStatus(
            id: node.id, role: node.role, term: node.term, leaderID: node.leaderID, commitIndex: node.commitIndex,
            appliedIndex: node.appliedIndex, lastIndex: node.lastIndex, pendingProposals: pending.count,
            inboxMessagesDropped: inbox.messagesDropped, storageSyncs: log.syncCount, failure: failure,
            membership: node.membership, snapshotIndex: node.snapshotMetadata.index, snapshotsTaken: snapshotsTaken,
            snapshotsInstalled: snapshotsInstalled, malformedMessagesDropped: node.malformedMessagesDropped)
    }

    func logEntries() -> [Entry] {
        let first = node.snapshotMetadata.index + 1
        guard first <= node.lastIndex else { return [] }
        return (first...node.lastIndex).compactMap { node.entry(at: $0) }
    }
}
