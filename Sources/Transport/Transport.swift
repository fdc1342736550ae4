import ClusterCertificates
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Raft
import Wire

/// Raft messages between servers over TCP: a shell that moves bytes and decides nothing.
///
/// - Outbound: one connection per peer, opened at start and reopened after every loss with
///   `ReconnectBackoff`. Each message is one Wire frame. Messages wait in a bounded per-peer queue
///   while the connection is down or its socket buffer is above `outboundBufferBytesHigh`; a full
///   queue drops the newest message and counts it (Raft retries on its own).
/// - Inbound: every accepted connection gets its own `FrameDecoder`. Any `WireError` (bad magic,
///   a frame version this build does not speak, checksum, malformed message, oversized frame)
///   closes that connection alone, is counted and logged; the listener keeps serving. The
///   version byte of every frame is the handshake: a peer of another Wire version is refused on
///   its first frame rather than misread.
/// - Delivery: each decoded message is handed to `receive` on the transport's event loop, in the
///   order it arrived on its connection. `receive` must not block, and must bound whatever it
///   buffers (the replica's inbox does).
///
/// Ownership: all mutable state lives on `eventLoop` (one loop, so that the listener, its child
/// connections and the outbound connections never race). `send` and the other public methods may
/// be called from any thread. The caller owns the event loop group and shuts it down after
/// `shutdown()`.
public final class Transport: Sendable {
    public let configuration: TransportConfiguration
    public let eventLoop: any EventLoop
    /// The port the listener is bound to (the kernel's choice when the configuration asked for 0).
    public let listenPort: Int
    let logger: Logger
    let receive: @Sendable (Message) -> Void
    let state: NIOLoopBoundBox<TransportState>

    /// Binds the listener and starts connecting to every configured peer.
    public static func start(
        configuration: TransportConfiguration, eventLoop: any EventLoop, logger: Logger,
        receive: @escaping @Sendable (Message) -> Void
    ) async throws(TransportError) -> Transport {
        let state = NIOLoopBoundBox.makeBoxSendingValue(TransportState(), as: TransportState.self, eventLoop: eventLoop)
        let box = ListenerBox(state: state, configuration: configuration, logger: logger, receive: receive)
        var serverChannel: (any Channel)?
        var bindAttempts = 0
        // A port just released can stay held for a moment: `fork` (inside any thread's
        // posix_spawn) copies the old listening socket into the child until it calls `exec`, so
        // the socket outlives its close. A restart on the same port retries for a bounded time
        // rather than fail; a port really in use still fails after `bindAttemptsMax`.
        while serverChannel == nil {
            bindAttempts += 1
            do {
                serverChannel = try await bind(configuration: configuration, eventLoop: eventLoop, box: box)
            } catch let error as IOError where error.errnoCode == EADDRINUSE && bindAttempts < Self.bindAttemptsMax {
                try? await Task.sleep(for: .milliseconds(20))
            } catch {
                throw .bindFailed(address: configuration.listenAddress, reason: "\(error)")
            }
        }
        let transport = try await finishStart(configuration: configuration, eventLoop: eventLoop, logger: logger,
                                              receive: receive, state: state, serverChannel: serverChannel!)
        return transport
    }

    /// Binding attempts of `start` on EADDRINUSE, 20 ms apart.
    static let bindAttemptsMax = 100

    private static func bind(
        configuration: TransportConfiguration, eventLoop: any EventLoop, box: ListenerBox
    ) async throws -> any Channel {
        try await ServerBootstrap(group: eventLoop)
                .serverChannelOption(.backlog, value: 64)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        // First, so that it sees every byte, the handshake's too.
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: configuration.inboundIdleTimeout))
                        if let tls = configuration.tls {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.contexts.serverContext))
                        }
                        try channel.pipeline.syncOperations.addHandler(InboundFrameHandler(box: box))
                    }
                }
                .bind(host: configuration.listenAddress.host, port: configuration.listenAddress.port)
                .get()
    }

    private static func finishStart(
        configuration: TransportConfiguration, eventLoop: any EventLoop, logger: Logger,
        receive: @escaping @Sendable (Message) -> Void, state: NIOLoopBoundBox<TransportState>, serverChannel: any Channel
    ) async throws(TransportError) -> Transport {
        let transport = Transport(configuration: configuration, eventLoop: eventLoop,
                                  listenPort: serverChannel.localAddress?.port ?? configuration.listenAddress.port,
                                  logger: logger, receive: receive, state: state)
        do {
            try await eventLoop.submit {
                transport.state.value.serverChannel = serverChannel
                for (id, address) in configuration.peers.sorted(by: { $0.key < $1.key }) {
                    transport.addLink(id, address: address)
                }
            }.get()
        } catch {
            throw .shutDown
        }
        return transport
    }

    init(configuration: TransportConfiguration, eventLoop: any EventLoop, listenPort: Int, logger: Logger,
         receive: @escaping @Sendable (Message) -> Void, state: NIOLoopBoundBox<TransportState>) {
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.listenPort = listenPort
        self.logger = logger
        self.receive = receive
        self.state = state
    }

    // MARK: Public API (any thread)

    /// Queues `messages` for their peers, best effort, without waiting. Frames are encoded on the
    /// caller's thread so that a busy Raft loop shares the encoding work with the IO loop.
    public func send(_ messages: [Message]) {
        guard !messages.isEmpty else { return }
        let frames = messages.map { (to: $0.to, bytes: Frame.encode($0)) }
        if eventLoop.inEventLoop {
            enqueue(frames)
        } else {
            eventLoop.execute { self.enqueue(frames) }
        }
    }

    /// Sets (or, with nil, removes) the address of a peer, which may be new: membership changes
    /// add servers at runtime. A changed address drops the old connection and its queued
    /// messages; the same address again changes nothing, so that a caller may repeat what it
    /// learns (a daemon re-applying its gossip view) without cutting a working connection.
    public func setPeer(_ id: NodeID, address: PeerAddress?) {
        eventLoop.execute {
            if let address, self.state.value.links[id]?.address == address { return }
            self.removeLink(id)
            if let address, id != self.configuration.localID { self.addLink(id, address: address) }
        }
    }

    public func counters() async -> TransportCounters {
        (try? await eventLoop.submit { self.state.value.counters }.get()) ?? TransportCounters()
    }

    /// Closes the listener and every connection and stops reconnecting. Messages sent afterwards
    /// are dropped silently.
    public func shutdown() async {
        let closed: EventLoopFuture<Void> = eventLoop.flatSubmit {
            let state = self.state.value
            state.isShutDown = true
            var closing: [EventLoopFuture<Void>] = []
            if let server = state.serverChannel { closing.append(server.close()) }
            for id in Array(state.links.keys) { self.removeLink(id) }
            for channel in state.inboundChannels.values { closing.append(channel.close()) }
            return EventLoopFuture.andAllComplete(closing, on: self.eventLoop)
        }
        try? await closed.get()
    }

    // MARK: Outbound (on the loop)

    func enqueue(_ frames: [(to: NodeID, bytes: [UInt8])]) {
        let state = state.value
        guard !state.isShutDown else { return }
        var touched: Set<NodeID> = []
        for frame in frames {
            guard let link = state.links[frame.to] else {
                state.counters.messagesDroppedUnknownPeer += 1
                continue
            }
            guard link.queue.count < configuration.sendQueueMessagesMax else {
                state.counters.messagesDroppedQueueFull += 1
                continue
            }
            link.queue.append(frame.bytes)
            touched.insert(frame.to)
        }
        for id in touched { drain(id) }
    }

    /// Moves queued frames into the peer's socket while it is writable.
    func drain(_ id: NodeID) {
        let state = state.value
        guard let link = state.links[id], let channel = link.channel else { return }
        var wrote = 0
        while channel.isWritable, let bytes = link.queue.popFirst() {
            var buffer = channel.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            channel.write(buffer, promise: nil)
            wrote += 1
        }
        if wrote > 0 {
            state.counters.messagesSent += wrote
            channel.flush()
        }
    }

    func addLink(_ id: NodeID, address: PeerAddress) {
        let seed = configuration.jitterSeed &+ id.rawValue &* 0x9E37_79B9_7F4A_7C15
        let link = PeerLink(address: address, backoff: ReconnectBackoff(
            delayMin: configuration.reconnectDelayMin, delayMax: configuration.reconnectDelayMax, seed: seed))
        state.value.links[id] = link
        connect(id, link: link)
    }

    func removeLink(_ id: NodeID) {
        guard let link = state.value.links.removeValue(forKey: id) else { return }
        link.isRemoved = true
        link.reconnect?.cancel()
        link.channel?.close(promise: nil)
        link.pendingChannel?.close(promise: nil)
    }

    func connect(_ id: NodeID, link: PeerLink) {
        let state = state.value
        guard !state.isShutDown, !link.isRemoved else { return }
        link.reconnect = nil
        state.counters.connectAttempts += 1
        let watermark = ChannelOptions.Types.WriteBufferWaterMark(
            low: configuration.outboundBufferBytesHigh / 2, high: configuration.outboundBufferBytesHigh)
        ClientBootstrap(group: eventLoop)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: watermark)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { [address = link.address] in
                    if let tls = self.configuration.tls {
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: tls.contexts.clientContext, serverHostname: nil))
                    }
                    try channel.pipeline.syncOperations.addHandler(OutboundLinkHandler(transport: self, peerID: id, address: address))
                }
            }
            .connect(peer: link.address)
            .whenComplete { [linkIdentity = ObjectIdentifier(link)] result in
                self.connectFinished(id, linkIdentity: linkIdentity, result: result)
            }
    }

    /// The link `linkIdentity` names, unless it was removed or replaced meanwhile (closures on the
    /// loop capture the identity rather than the non-Sendable link itself).
    func currentLink(_ id: NodeID, _ linkIdentity: ObjectIdentifier) -> PeerLink? {
        guard let link = state.value.links[id], ObjectIdentifier(link) == linkIdentity else { return nil }
        return link
    }

    func connectFinished(_ id: NodeID, linkIdentity: ObjectIdentifier, result: Result<any Channel, any Error>) {
        let state = state.value
        guard let link = currentLink(id, linkIdentity), !state.isShutDown else {
            if case .success(let channel) = result { channel.close(promise: nil) }
            return
        }
        switch result {
        case .success(let channel) where configuration.tls != nil:
            // Nothing is written before the server proved who it is (`linkVerified`).
            link.pendingChannel = channel
        case .success(let channel):
            linkEstablished(id, link: link, channel: channel)
        case .failure(let error):
            state.counters.connectFailures += 1
            if link.backoff.attempt == 0 {
                logger.info("cannot connect to peer", metadata: ["peer": "\(id)", "address": "\(link.address)", "error": "\(error)"])
            }
            scheduleReconnect(id, link: link)
        }
    }

    func linkEstablished(_ id: NodeID, link: PeerLink, channel: any Channel) {
        state.value.counters.connectionsEstablished += 1
        link.channel = channel
        link.backoff.reset()
        logger.debug("connected to peer", metadata: ["peer": "\(id)", "address": "\(link.address)"])
        drain(id)
    }

    /// TLS: the outbound handshake finished and the server's certificate was checked.
    func linkVerified(_ id: NodeID, channel: any Channel, identity: PeerIdentity?) {
        guard let link = state.value.links[id], link.pendingChannel === channel else {
            channel.close(promise: nil)
            return
        }
        guard let identity, let tls = configuration.tls, tls.isServer(id, link.address, identity) else {
            state.value.counters.connectionsClosedUnauthorized += 1
            if link.backoff.attempt == 0 {
                logger.warning("peer's certificate is not the server dialled: closing", metadata: [
                    "peer": "\(id)", "address": "\(link.address)", "certificate": "\(identity.map { "\($0)" } ?? "no Flotilla identity")",
                ])
            }
            channel.close(promise: nil)
            return
        }
        link.pendingChannel = nil
        linkEstablished(id, link: link, channel: channel)
    }

    func scheduleReconnect(_ id: NodeID, link: PeerLink) {
        guard !state.value.isShutDown, !link.isRemoved, link.reconnect == nil else { return }
        let delay = link.backoff.nextDelay()
        link.reconnect = eventLoop.scheduleTask(in: delay) { [linkIdentity = ObjectIdentifier(link)] in
            if let link = self.currentLink(id, linkIdentity) { self.connect(id, link: link) }
        }
    }

    /// Called by the link's handler when its connection closed, for whatever reason.
    func linkClosed(_ id: NodeID, channel: any Channel) {
        guard let link = state.value.links[id] else { return }
        if link.pendingChannel === channel {
            // A TLS handshake that failed or a server that was not the one dialled.
            link.pendingChannel = nil
            state.value.counters.connectFailures += 1
            scheduleReconnect(id, link: link)
            return
        }
        guard link.channel === channel else { return }
        link.channel = nil
        logger.debug("connection to peer lost", metadata: ["peer": "\(id)"])
        scheduleReconnect(id, link: link)
    }
}

/// The mutable state of a transport, confined to its event loop.
final class TransportState {
    var links: [NodeID: PeerLink] = [:]
    var counters = TransportCounters()
    var serverChannel: (any Channel)?
    var inboundChannels: [ObjectIdentifier: any Channel] = [:]
    /// Open inbound connections by remote IP address (for `inboundConnectionsPerAddressMax`).
    var inboundByAddress: [String: Int] = [:]
    /// TLS: inbound connections whose handshake has not completed, by when they were admitted
    /// (a count of admissions). When `inboundConnectionsMax` are open, the oldest of these makes
    /// room for a newcomer: only a certificate of the cluster's CA finishes a handshake, so a
    /// flood from many addresses at once can hold the listener only until a peer connects.
    var handshakesPending: [ObjectIdentifier: (channel: any Channel, admitted: UInt64)] = [:]
    var admissions: UInt64 = 0
    var isShutDown = false
}

/// One peer's outbound side: its connection (when up), queue and backoff. Confined to the loop.
final class PeerLink {
    let address: PeerAddress
    var channel: (any Channel)?
    /// TLS: connected, handshake or identity check still to come; nothing is written on it.
    var pendingChannel: (any Channel)?
    var queue = CircularBuffer<[UInt8]>()
    var backoff: ReconnectBackoff
    var reconnect: Scheduled<Void>?
    var isRemoved = false

    init(address: PeerAddress, backoff: ReconnectBackoff) {
        self.address = address
        self.backoff = backoff
    }
}

/// What the listener's child handlers need before the `Transport` itself exists.
struct ListenerBox: Sendable {
    let state: NIOLoopBoundBox<TransportState>
    let configuration: TransportConfiguration
    let logger: Logger
    let receive: @Sendable (Message) -> Void
}
