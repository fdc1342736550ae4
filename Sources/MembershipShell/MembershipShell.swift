import Membership
import NIOCore
import NIOPosix

/// Runs one `MembershipInstance` for real: UDP datagrams for probes and gossip, TCP for push-pull,
/// one timer, a monotonic clock. The shell decides nothing; it feeds the core its inputs and
/// carries out every directive, in order.
///
/// - Confinement: the instance, the sockets' handlers, the timer and the counters all live on
///   `eventLoop` (the UDP socket, the TCP listener, its accepted connections and the outbound
///   push-pull connections are all registered on that one loop), so nothing races. The public
///   methods may be called from any thread or task.
/// - Time: `NIODeadline.now()` (CLOCK_MONOTONIC) in whole milliseconds is the core's
///   `MonotonicInstant`, and the timer is scheduled on the same clock.
/// - Timer: exactly one `Scheduled` task; each `.scheduleTick(at:)` cancels and replaces it. When
///   it fires and the core asks for no new one (its deadline did not move), the shell re-arms it at
///   the core's `nextDeadline`, at least 1 ms ahead, so the instance is never left without a timer.
/// - Randomness: the core's seed is drawn once from the system generator at start (or taken from
///   the configuration) and exposed as `randomSeed`.
/// - Streams: a push-pull request or join opens a TCP connection, writes one `StreamFrame`, reads
///   one response frame and closes; the listener answers each inbound request on the same
///   connection within the turn that handled it (the core's `.send(response, to: from)` is
///   matched to the connection it came on). Every exchange has a deadline (`streamTimeout`).
/// - Garbage: undecodable datagrams and frames are dropped and counted (`counters()`); a bad
///   frame closes only its own connection.
/// - Events: member changes go to `memberEvents`, an `AsyncStream` buffering at most
///   `memberEventsBufferMax` events (the oldest are dropped and counted).
///
/// The caller owns the event loop group and shuts it down after `stop()`.
public final class MembershipShell: Sendable {
    public let configuration: MembershipShellConfiguration
    public let eventLoop: any EventLoop
    /// The address peers reach this member at: the advertised host and the port both sockets
    /// are bound to (the kernel's choice when the configuration asked for port 0).
    public let localAddress: MemberAddress
    /// The seed the core's random generator started from; pass it back in the configuration to
    /// replay the core's random choices.
    public let randomSeed: UInt64
    /// Member changes in the order the core reported them. One consumer.
    public let memberEvents: AsyncStream<MembershipEvent>

    let state: NIOLoopBoundBox<ShellState>

    /// Binds the UDP socket and the TCP listener on one port, creates the core and starts its
    /// timer. It joins nobody: call `join(seeds:)` (an empty list starts a new cluster).
    public static func start(
        configuration: MembershipShellConfiguration, eventLoop: any EventLoop
    ) async throws(MembershipShellError) -> MembershipShell {
        try configuration.validate()
        var systemRandom = SystemRandomNumberGenerator()
        let seed = configuration.randomSeed ?? systemRandom.next()
        let (events, continuation) = AsyncStream.makeStream(
            of: MembershipEvent.self, bufferingPolicy: .bufferingNewest(configuration.memberEventsBufferMax))
        let state = NIOLoopBoundBox.makeBoxSendingValue(ShellState(continuation: continuation, keyring: configuration.keyring),
                                                        as: ShellState.self, eventLoop: eventLoop)
        let sockets = try await bindSockets(configuration: configuration, eventLoop: eventLoop, state: state)
        let address = MemberAddress(host: configuration.advertisedHost, port: UInt16(sockets.port))
        let member = Member(id: configuration.memberID, address: address, metadata: configuration.metadata,
                            role: configuration.role, version: configuration.version)
        let shell = MembershipShell(configuration: configuration, eventLoop: eventLoop, localAddress: address,
                                    randomSeed: seed, memberEvents: events, state: state)
        let created: Result<Void, MembershipShellError>
        do {
            created = try await eventLoop.submit {
                shell.begin(member: member, seed: seed, datagram: sockets.datagram, server: sockets.server)
            }.get()
        } catch {
            created = .failure(.stopped)
        }
        if case .failure(let error) = created {
            try? await sockets.datagram.close()
            try? await sockets.server.close()
            continuation.finish()
            throw error
        }
        return shell
    }

    init(configuration: MembershipShellConfiguration, eventLoop: any EventLoop, localAddress: MemberAddress,
         randomSeed: UInt64, memberEvents: AsyncStream<MembershipEvent>, state: NIOLoopBoundBox<ShellState>) {
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.localAddress = localAddress
        self.randomSeed = randomSeed
        self.memberEvents = memberEvents
        self.state = state
    }

    // MARK: Public API (any thread)

    /// Joins a cluster through `seeds` (the core retries them until one answers). An empty list,
    /// or one naming only this member, starts a new cluster.
    public func join(seeds: [MemberAddress]) async throws(MembershipShellError) {
        try await onLoop { shell in
            guard shell.isRunning, shell.state.value.instance != nil else { return }
            let directives = shell.state.value.instance!.join(seeds: seeds, now: shell.now())
            shell.perform(directives)
        }
    }

    /// Every member this shell knows, itself included, sorted by ID.
    public func members() async throws(MembershipShellError) -> [Member] {
        try await onLoop { shell in shell.state.value.instance?.members ?? [] }
    }

    /// This member as it currently advertises itself (its incarnation rises when it refutes).
    public func localMember() async throws(MembershipShellError) -> Member {
        let member: Member? = try await onLoop { shell in shell.state.value.instance?.localMember }
        guard let member else { throw .stopped }
        return member
    }

    /// An address where another live member answers to this member's ID (two machines with one
    /// machine ID), once seen; nil otherwise.
    public func identityClash() async throws(MembershipShellError) -> MemberAddress? {
        try await onLoop { shell in shell.state.value.instance?.identityClash }
    }

    /// Whether a ping to an address that announced this member's ID is still waiting for its ack.
    public func identityProbesInFlight() async throws(MembershipShellError) -> Bool {
        try await onLoop { shell in shell.state.value.instance?.hasIdentityProbesInFlight ?? false }
    }

    /// Whether a seed has answered the join (true at once when there were none to ask).
    public func hasJoined() async throws(MembershipShellError) -> Bool {
        try await onLoop { shell in shell.state.value.instance?.hasJoined ?? false }
    }

    /// Replaces the keyring (a rotation step: a key installed, made primary, or removed). Takes
    /// effect for the next packet in either direction. Going between nil and a keyring is
    /// refused: a member that switched alone would be cut off from every other.
    public func setKeyring(_ keyring: GossipKeyring) async throws(MembershipShellError) {
        let changed: Bool = try await onLoop { shell in
            guard shell.state.value.keyring != nil else { return false }
            shell.state.value.keyring = keyring
            return true
        }
        guard changed else { throw .invalidConfiguration("this member gossips in plain text: start it with a keyring to use one") }
    }

    /// The keyring in use (nil: plain text).
    public func keyring() async throws(MembershipShellError) -> GossipKeyring? {
        try await onLoop { shell in shell.state.value.keyring }
    }

    public func counters() async -> MembershipShellCounters {
        (try? await onLoop { shell in shell.state.value.counters }) ?? MembershipShellCounters()
    }

    /// Graceful leave: the core announces it, and the shell keeps running for
    /// `leavePropagationMilliseconds` so the goodbye spreads; then it returns. Call `stop()` next.
    public func leave() async throws(MembershipShellError) {
        try await onLoop { shell in
            guard shell.isRunning, shell.state.value.instance != nil else { return }
            shell.perform(shell.state.value.instance!.leave(now: shell.now()))
        }
        try? await eventLoop.scheduleTask(in: .milliseconds(configuration.leavePropagationMilliseconds)) {}.futureResult.get()
    }

    /// Closes both sockets and every push-pull connection, cancels the timer and finishes
    /// `memberEvents`. Idempotent. Other members will see this one fail (use `leave()` first for
    /// a graceful departure).
    public func stop() async {
        let closed: EventLoopFuture<Void> = eventLoop.flatSubmit { self.close() }
        try? await closed.get()
    }

    func onLoop<Result: Sendable>(
        _ body: @escaping @Sendable (MembershipShell) -> Result
    ) async throws(MembershipShellError) -> Result {
        do {
            return try await eventLoop.submit { body(self) }.get()
        } catch {
            throw .stopped
        }
    }

    // MARK: Binding

    struct BoundSockets: Sendable {
        var datagram: any Channel
        var server: any Channel
        var port: Int
    }

    /// Binds UDP first, then TCP on the same port. With port 0 the kernel picks the UDP port,
    /// which may be taken for TCP: then both are released and another port is tried, a bounded
    /// number of times.
    static func bindSockets(
        configuration: MembershipShellConfiguration, eventLoop: any EventLoop, state: NIOLoopBoundBox<ShellState>
    ) async throws(MembershipShellError) -> BoundSockets {
        let attemptsMax = configuration.bindPort == 0 ? 16 : 1
        var lastError = ""
        for _ in 0..<attemptsMax {
            let datagram: any Channel
            do {
                datagram = try await DatagramBootstrap(group: eventLoop)
                    .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536))
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(DatagramHandler(state: state))
                        }
                    }
                    .bind(host: configuration.bindHost, port: configuration.bindPort)
                    .get()
            } catch {
                throw .bindFailed(host: configuration.bindHost, port: configuration.bindPort, reason: "UDP: \(error)")
            }
            let port = datagram.localAddress?.port ?? configuration.bindPort
            do {
                let server = try await ServerBootstrap(group: eventLoop)
                    .serverChannelOption(.backlog, value: 64)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                    .childChannelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(
                                InboundStreamHandler(state: state, configuration: configuration))
                        }
                    }
                    .bind(host: configuration.bindHost, port: port)
                    .get()
                return BoundSockets(datagram: datagram, server: server, port: port)
            } catch {
                lastError = "\(error)"
                try? await datagram.close()
            }
        }
        throw .bindFailed(host: configuration.bindHost, port: configuration.bindPort, reason: "TCP: \(lastError)")
    }
}
