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
    var storageFailure: StorageError?
    /// The hard state last made durable, for `Ready.messagesMaySendBeforePersisting`.
    var durableHardState: HardState
    var isClosed = false

    init(configuration: ReplicaConfiguration, inbox: Inbox, logger: Logger, eventLoop: any EventLoop,
         node: RaftNode, log: WriteAheadLog, durableHardState: HardState, stateMachine: StateMachine) {
        self.configuration = configuration
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
        eventLoop: any EventLoop
    ) -> Result<NIOLoopBoundBox<ReplicaLoop>, ReplicaError> {
        let log: WriteAheadLog
        let recovered: PersistentState
        do {
            (log, recovered) = try WriteAheadLog.open(
                directory: configuration.dataDirectory, configuration: configuration.writeAheadLog,
                initialState: .bootstrap(voters: configuration.foundingVoters))
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
        if recovered.snapshot.metadata.index > 0 { stateMachine.restore(recovered.snapshot) }
        logger.info("replica recovered", metadata: [
            "id": "\(configuration.id)", "term": "\(recovered.hardState.term)",
            "lastIndex": "\(node.lastIndex)", "commitIndex": "\(node.commitIndex)",
        ])
        let loop = ReplicaLoop(configuration: configuration, inbox: inbox, logger: logger, eventLoop: eventLoop,
                               node: node, log: log, durableHardState: recovered.hardState,
                               stateMachine: stateMachine)
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

    var isRunning: Bool { !isClosed && storageFailure == nil && transport != nil }

    // MARK: Inputs

    func tick() {
        guard isRunning else { return }
        node.tick()
        handleReadies()
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
            switch node.propose(proposal.data, stamp: proposal.stamp) {
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
        for _ in 0..<configuration.readyBatchesPerTurnMax {
            guard isRunning, let ready = node.ready() else { return }
            handle(ready)
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
                failStorage(error)
                return
            }
        }
        if let state = ready.hardState { durableHardState = state }
        if !sendsEarly { transport?.send(ready.messages) }
        if let snapshot = ready.snapshot { stateMachine.restore(snapshot) }
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
        node.advance(ready)
    }

    /// After a failed write or sync the log refuses further use (see `StorageError.unusableAfterFailure`),
    /// and so must the replica: it stops taking part rather than vote or acknowledge without a disk.
    func failStorage(_ error: StorageError) {
        storageFailure = error
        logger.critical("write-ahead log failed; replica stops taking part", metadata: [
            "id": "\(configuration.id)", "error": "\(error)",
        ])
        ticker?.cancel()
        failPending()
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
        for proposal in inbox.close() { proposal.completion(.failure(.stopped)) }
        log.close()
    }

    // MARK: Inspection

    func status() -> ReplicaStatus {
        ReplicaStatus(
            id: node.id, role: node.role, term: node.term, leaderID: node.leaderID, commitIndex: node.commitIndex,
            appliedIndex: node.appliedIndex, lastIndex: node.lastIndex, pendingProposals: pending.count,
            inboxMessagesDropped: inbox.messagesDropped, storageSyncs: log.syncCount, storageFailure: storageFailure)
    }

    func logEntries() -> [Entry] {
        let first = node.snapshotMetadata.index + 1
        guard first <= node.lastIndex else { return [] }
        return (first...node.lastIndex).compactMap { node.entry(at: $0) }
    }
}
