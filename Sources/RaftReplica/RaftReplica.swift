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
/// - after each input, every `Ready` is handled: (1) `WriteAheadLog.append`, one fdatasync;
///   (2) only then its messages go to the transport; (3) a received snapshot is restored and the
///   committed entries are applied to the `StateMachine`, answering the proposals they belong to;
///   (4) `advance`. One Ready carries every proposal that arrived since the previous one, so
///   concurrent clients share each fsync (group commit).
///
/// The fsync blocks this loop, deliberately: nothing may be sent before it returns, and while it
/// runs the transport's separate loop keeps reading from peers into the inbox, to be handled in
/// the next turn. Give the replica an event loop of its own, never the Swift concurrency pool.
///
/// A proposal is answered when an entry at the index it was appended at is applied: success if
/// that entry has the proposal's term, `superseded` otherwise (§8: a leader that lost leadership
/// may see its entry replaced). Proposals on a follower fail at once with the leader's id.
///
/// Not yet: snapshots of the state machine and log compaction, ReadIndex reads, membership
/// changes through this API (the core supports all three).
public final class RaftReplica: Sendable {
    public let configuration: ReplicaConfiguration
    public let eventLoop: any EventLoop
    public let transport: Transport
    let inbox: Inbox
    let loop: NIOLoopBoundBox<ReplicaLoop>

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
        let inbox = Inbox(messagesMax: configuration.inboxMessagesMax, proposalsMax: configuration.pendingProposalsMax)
        let machine = NIOLoopBoundBox.makeBoxSendingValue(stateMachine, as: StateMachine.self, eventLoop: eventLoop)
        let opened: Result<NIOLoopBoundBox<ReplicaLoop>, ReplicaError>
        do {
            // The log is opened on the loop that will own it: its IO blocks that thread, not the
            // caller's, and the non-Sendable log never crosses threads.
            opened = try await eventLoop.submit {
                ReplicaLoop.open(configuration: configuration, inbox: inbox, logger: logger,
                                 stateMachine: machine.value, eventLoop: eventLoop)
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
        return RaftReplica(configuration: configuration, eventLoop: eventLoop, transport: transport, inbox: inbox, loop: loop)
    }

    init(configuration: ReplicaConfiguration, eventLoop: any EventLoop, transport: Transport, inbox: Inbox,
         loop: NIOLoopBoundBox<ReplicaLoop>) {
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
        switch inbox.offer(ProposalRequest(data: data, stamp: stamp, completion: completion)) {
        case .scheduleTurn: eventLoop.execute { self.loop.value.turn() }
        case .queued: break
        case .refusedFull: completion(.failure(.overloaded(pendingProposalsMax: configuration.pendingProposalsMax)))
        case .refusedClosed: completion(.failure(.stopped))
        }
    }

    /// Proposes `data` and waits until it is applied on this replica.
    public func propose(_ data: [UInt8], stamp: ClientStamp? = nil) async throws(ProposalError) -> AppliedProposal {
        let result = await withCheckedContinuation { continuation in
            propose(data, stamp: stamp) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    public func status() async -> ReplicaStatus? {
        try? await eventLoop.submit { self.loop.value.status() }.get()
    }

    /// The entries this replica holds after its snapshot, in order (tests and tools).
    public func logEntries() async -> [Entry] {
        (try? await eventLoop.submit { self.loop.value.logEntries() }.get()) ?? []
    }

    /// Stops ticking and taking input, closes the transport and the log. Pending proposals fail
    /// with `stopped`. The caller shuts down the event loops afterwards.
    public func stop() async {
        try? await eventLoop.submit { self.loop.value.close() }.get()
        await transport.shutdown()
    }
}

