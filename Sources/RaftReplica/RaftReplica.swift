import Logging
import NIOCore
import Raft
import Storage
import Transport

/// Runs one Raft replica for real: a shell around a `RaftNode`, its `WriteAheadLog` and a
/// `Transport`. It decides nothing: every decision is the core's; this type only carries out
/// each `Ready` in the order its contract prescribes.
///
/// The loop, on `eventLoop` (one thread, owned by nobody else's work):
/// - a tick every `tickInterval` calls `RaftNode.tick()`;
/// - messages from peers and client proposals arrive through a bounded `Inbox` and are fed to
///   the core in one turn;
/// - after each input, every `Ready` is handled: (1) `WriteAheadLog.append`, one fdatasync (none
///   for a batch that only raises the commit index, which Raft may lose); (2) only then its
///   messages go to the transport (a leader's replication before (1), thesis §10.2.1); (3) a
///   received snapshot is restored and the committed entries are applied to the `StateMachine`,
///   answering the proposals they belong to; (4) `advance`; (5) when due, a snapshot of the state
///   machine and the compaction of the log behind it. One Ready carries every proposal that
///   arrived since the previous one, so concurrent clients share each fsync (group commit).
///
/// The fsync blocks this loop, deliberately: nothing may be sent before it returns, and while it
/// runs the transport's separate loop keeps reading from peers into the inbox, to be handled in
/// the next turn. Give the replica an event loop of its own, never the Swift concurrency pool.
///
/// A proposal is answered when an entry at the index it was appended at is applied: success if
/// that entry has the proposal's term, `superseded` otherwise (§8: a leader that lost leadership
/// may see its entry replaced). Proposals on a follower fail at once with the leader's id.
///
/// Snapshots: every `ReplicaConfiguration.snapshotEveryEntries` applied entries the state
/// machine's `snapshot` is taken, written atomically and the log compacted behind it, in memory
/// and on disk (§7); a lagging or new peer receives it through the core's chunked InstallSnapshot,
/// and a restart restores the snapshot, then replays the log after it.
///
/// Membership: `addLearner`, `promote`, `removeVoter` and `transferLeadership` drive the core's
/// single-server changes (thesis §4.1), learners (§4.2.1) and leadership transfer (§3.10); peer
/// addresses are not replicated, see `addLearner`.
///
/// Reads: `readBarrier` is ReadIndex (thesis §6.4): state read on the leader after it returns
/// reflects every write acknowledged before the call, even on a leader just elected or cut off.
public final class RaftReplica: Sendable {
    public let configuration: ReplicaConfiguration
    public let eventLoop: any EventLoop
    public let transport: Transport
    let inbox: Inbox
    let loop: NIOLoopBoundBox<ReplicaLoop>
    /// Yields once if the replica stops taking part on its own (a failed write-ahead log, a
    /// snapshot that did not restore: `ReplicaFailure`), and finishes when it is stopped. For one
    /// reader, the process's supervisor: it should leave leadership and exit, so that systemd and
    /// the other voters act on a node that can no longer vote or acknowledge.
    public let failures: AsyncStream<ReplicaFailure>

    /// Opens (or creates) the write-ahead log, restores the state machine, starts the transport
    /// and the tick timer. `eventLoop` runs Raft; `transportEventLoop` runs the sockets.
    public static func start(
        configuration: ReplicaConfiguration,
        transportConfiguration: TransportConfiguration,
        eventLoop: any EventLoop,
        transportEventLoop: any EventLoop,
        logger: Logger,
        stateMachine: sending StateMachine
    ) async throws(ReplicaError) -> RaftReplica {
        guard transportConfiguration.localID == configuration.id else {
            throw .invalidConfiguration("transport localID \(transportConfiguration.localID) is not replica \(configuration.id)")
        }
        guard configuration.snapshotEveryEntries == nil || stateMachine.snapshot != nil else {
            throw .invalidConfiguration("snapshotEveryEntries is set but the state machine cannot snapshot")
        }
        let inbox = Inbox(messagesMax: configuration.inboxMessagesMax, proposalsMax: configuration.pendingProposalsMax)
        let machine = NIOLoopBoundBox.makeBoxSendingValue(stateMachine, as: StateMachine.self, eventLoop: eventLoop)
        // One failure at most, then the end: a buffer of one never drops it.
        let (failures, failuresContinuation) = AsyncStream.makeStream(of: ReplicaFailure.self, bufferingPolicy: .bufferingOldest(1))
        let opened: Result<NIOLoopBoundBox<ReplicaLoop>, ReplicaError>
        do {
            // The log is opened on the loop that will own it: its IO blocks that thread, not the
            // caller's, and the non-Sendable log never crosses threads.
            opened = try await eventLoop.submit {
                ReplicaLoop.open(configuration: configuration, inbox: inbox, logger: logger,
                                 stateMachine: machine.value, eventLoop: eventLoop, failures: failuresContinuation)
            }.get()
        } catch {
            throw .stopped
        }
        let loop = try opened.get()
        let transport: Transport
        do {
            transport = try await Transport.start(
                configuration: transportConfiguration, eventLoop: transportEventLoop, logger: logger,
                receive: { message in
                    if inbox.offer(message) { eventLoop.execute { loop.value.turn() } }
                })
        } catch {
            try? await eventLoop.submit { loop.value.close() }.get()
            throw .transport(error)
        }
        try? await eventLoop.submit { loop.value.begin(transport: transport) }.get()
        return RaftReplica(configuration: configuration, eventLoop: eventLoop, transport: transport, inbox: inbox, loop: loop,
                           failures: failures)
    }

    init(configuration: ReplicaConfiguration, eventLoop: any EventLoop, transport: Transport, inbox: Inbox,
         loop: NIOLoopBoundBox<ReplicaLoop>, failures: AsyncStream<ReplicaFailure>) {
        self.failures = failures
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.transport = transport
        self.inbox = inbox
        self.loop = loop
    }

    /// Proposes `data`; `completion` runs once, on the replica's loop (it must not block), when
    /// the entry is applied or the proposal fails. Callable from any thread.
    public func propose(
        _ data: [UInt8], stamp: ClientStamp? = nil,
        completion: @escaping @Sendable (Result<AppliedProposal, ProposalError>) -> Void
    ) {
        offer(ProposalRequest(kind: .command(data: data, stamp: stamp), completion: completion))
    }

    func offer(_ proposal: ProposalRequest) {
        switch inbox.offer(proposal) {
        case .scheduleTurn: eventLoop.execute { self.loop.value.turn() }
        case .queued: break
        case .refusedFull: proposal.completion(.failure(.overloaded(pendingProposalsMax: configuration.pendingProposalsMax)))
        case .refusedClosed: proposal.completion(.failure(.stopped))
        }
    }

    /// Proposes `data` and waits until it is applied on this replica.
    public func propose(_ data: [UInt8], stamp: ClientStamp? = nil) async throws(ProposalError) -> AppliedProposal {
        let result = await withCheckedContinuation { continuation in
            propose(data, stamp: stamp) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// A linearizable read barrier (thesis §6.4, ReadIndex): returns the read index once this
    /// replica, as leader, has heard from a majority since the call (so no newer leader can have
    /// committed anything it lacks) and has applied everything through the commit index it had at
    /// the call (a new leader first commits an entry of its own term). The state machine read
    /// afterwards reflects every write acknowledged before the call. On a follower it fails at
    /// once with `notLeader`; a leader that no majority confirms within two election timeouts
    /// fails it with `readNotConfirmed`.
    public func readBarrier() async throws(ProposalError) -> UInt64 {
        let result = await withCheckedContinuation { continuation in
            offer(ProposalRequest(kind: .read) { continuation.resume(returning: $0) })
        }
        return try result.get().index
    }

    // MARK: Membership (thesis §4)

    /// Adds `id` as a learner, which receives the log (or a snapshot) but does not vote, and
    /// returns once the change is committed and applied here. Call it on the leader; others
    /// refuse with `notLeader`. `address` becomes this replica's route to the new server.
    ///
    /// The core does not replicate addresses: every other member, and every future leader, must
    /// be told the learner's address with `setPeerAddress` (the daemon knows it from its gossip
    /// membership), or it cannot reach the learner once it leads. The new server itself starts
    /// with `ReplicaConfiguration.foundingVoters` empty and the members' addresses.
    public func addLearner(_ id: NodeID, address: PeerAddress) async throws(ProposalError) {
        setPeerAddress(id, address)
        try await changeMembership(.addLearner(id))
    }

    /// Makes the learner `id` a voter, once committed and applied here. The core refuses with
    /// `dropped(.invalidMembershipChange(.learnerNotCaughtUp))` while the learner's log lags by more
    /// than `RaftConfiguration.learnerPromotionLagEntriesMax` (thesis §4.2.1: a voter that must
    /// first copy the log would stall commitment); retry once it has caught up.
    public func promote(_ id: NodeID) async throws(ProposalError) {
        try await changeMembership(.promoteLearner(id))
    }

    /// Removes the voter (or learner) `id`, once committed and applied here. The leader may
    /// remove itself: it keeps leading until the change commits, without counting itself, then
    /// steps down and hands over to an up-to-date voter (thesis §4.2.2). The removed server's
    /// address stays known to the transport; stop the removed server, then forget its address
    /// with `setPeerAddress(id, nil)` if it will not come back.
    public func removeVoter(_ id: NodeID) async throws(ProposalError) {
        try await changeMembership(.removeNode(id))
    }

    /// One single-server change at a time (thesis §4.1): a second one proposed before the first
    /// commits fails with `dropped(.membershipChangeInProgress)`, and a new leader accepts none
    /// before it has committed an entry of its own term (`dropped(.leaderHasNotCommittedInTerm)`).
    func changeMembership(_ change: MembershipChange) async throws(ProposalError) {
        let result = await withCheckedContinuation { continuation in
            offer(ProposalRequest(kind: .membershipChange(change)) { continuation.resume(returning: $0) })
        }
        _ = try result.get()
    }

    /// Hands leadership to the voter `target` (thesis §3.10) and returns once this replica
    /// follows it. The leader stops accepting proposals meanwhile (`dropped(.leadershipTransferInProgress)`).
    public func transferLeadership(to target: NodeID) async throws(LeadershipTransferError) {
        guard !inbox.isClosed else { throw .stopped }
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Void, LeadershipTransferError>, Never>) in
            eventLoop.submit {
                self.loop.value.transferLeadership(to: target) { continuation.resume(returning: $0) }
            }.whenFailure { _ in continuation.resume(returning: .failure(.stopped)) }
        }
        try result.get()
    }

    /// Sets (or, with nil, forgets) where the peer `id` listens. Members added after this replica
    /// started must be set here; the transport connects to them at once.
    public func setPeerAddress(_ id: NodeID, _ address: PeerAddress?) {
        transport.setPeer(id, address: address)
    }

    /// Nil once stopped. The stopped check comes first because the caller shuts the loop down
    /// after `stop`, and NIO reports (and will trap on) work submitted to a loop that is gone.
    public func status() async -> ReplicaStatus? {
        guard !inbox.isClosed else { return nil }
        return try? await eventLoop.submit { self.loop.value.status() }.get()
    }

    /// The entries this replica holds after its snapshot, in order (tests and tools); none once
    /// stopped.
    public func logEntries() async -> [Entry] {
        guard !inbox.isClosed else { return [] }
        return (try? await eventLoop.submit { self.loop.value.logEntries() }.get()) ?? []
    }

    /// Stops ticking and taking input, closes the transport and the log. Pending proposals fail
    /// with `stopped`. The caller shuts down the event loops afterwards. Stopping twice is fine.
    public func stop() async {
        guard !inbox.isClosed else { return }
        try? await eventLoop.submit { self.loop.value.close() }.get()
        await transport.shutdown()
    }
}

