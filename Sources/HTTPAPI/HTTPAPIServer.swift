import FleetAPI
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS

/// The HTTP API: fleet's v1 routes and Flotilla's /flotilla/v1 additions, on any number of
/// listeners, answered by one `APIBackend`.
///
/// Each listener runs an accept loop in a task of its own; each connection is served by a child
/// task of that loop (`HTTPConnection`). `shutdown` stops accepting, closes every connection
/// (requests in flight are cancelled) and waits for the tasks to end.
public final class HTTPAPIServer: Sendable {
    /// The address each listener is bound to, in the order of `start`'s `listeners`; a TCP port 0
    /// shows here as the port the kernel chose.
    public let boundAddresses: [SocketAddress]
    private let listeners: [APIListener]
    private let serverChannels: [any Channel]
    private let acceptTasks: [Task<Void, Never>]
    private let connections: ConnectionRegistry
    private let logger: Logger

    /// Connections closed, their TLS handshake unfinished, to make room for a newcomer while
    /// `connectionsMax` were open.
    public var connectionsEvictedUnauthenticated: Int { connections.connectionsEvictedUnauthenticated }
    /// For tests: connections admitted and not yet closed, across the listeners.
    var connectionsOpen: Int { connections.connectionsOpen }

    /// The port of the first TCP listener (or inherited TCP socket), if any: for tests on port 0.
    public var tcpPort: Int? { boundAddresses.lazy.compactMap(\.port).first }

    private init(boundAddresses: [SocketAddress], listeners: [APIListener], serverChannels: [any Channel],
                 acceptTasks: [Task<Void, Never>], connections: ConnectionRegistry, logger: Logger) {
        self.boundAddresses = boundAddresses
        self.listeners = listeners
        self.serverChannels = serverChannels
        self.acceptTasks = acceptTasks
        self.connections = connections
        self.logger = logger
    }

    /// Reads the certificates of every `.tls` listener, binds every listener, then starts
    /// serving. If any listener fails, those already bound are closed and the error says which one
    /// failed (a bad certificate or key file fails before anything is bound).
    ///
    /// `audience` says whom the listeners serve. For `.peers(tls:)` every listener must be `.tcp`;
    /// with `tls`, each is served over mutual TLS with the peers' contexts.
    public static func start(listeners: [APIListener], backend: any APIBackend, configuration: HTTPAPIConfiguration = HTTPAPIConfiguration(),
                             audience: APIAudience = .users(machineID: "local"),
                             eventLoopGroup: any EventLoopGroup, logger: Logger) async throws(HTTPAPIServerError) -> HTTPAPIServer {
        precondition(!listeners.isEmpty, "HTTPAPIServer needs at least one listener")
        let connections = ConnectionRegistry(connectionsMax: configuration.connectionsMax,
                                             connectionsPerAddressMax: configuration.connectionsPerAddressMax)
        let connection = HTTPConnection(handler: APIRequestHandler(backend: backend, configuration: configuration, logger: logger),
                                        configuration: configuration, logger: logger)
        var tlsContexts: [NIOSSLContext?] = []
        var origins: [OriginSource] = []
        for listener in listeners {
            switch audience {
            case .users(let machineID):
                tlsContexts.append(try ServerTLS.makeContext(for: listener))
                switch listener {
                case .unix, .inheritedSocket: origins.append(.user(APICaller(kind: .socket, machineID: machineID)))
                case .tcp, .tls(_, _, _, _, nil): origins.append(.user(APICaller(kind: .network, machineID: machineID)))
                case .tls: origins.append(.userWithClientCertificate(APICaller(kind: .network, machineID: machineID)))
                }
            case .peers(let tls):
                guard case .tcp = listener else {
                    throw HTTPAPIServerError(listener: listener, reason: "the peer API listens on TCP only (peer_port)")
                }
                tlsContexts.append(tls?.serverContext)
                origins.append(tls == nil ? .unverifiedPeer : .verifiedPeer)
            }
        }
        var bound: [NIOAsyncChannel<AcceptedConnection, Never>] = []
        for (listener, tlsContext) in zip(listeners, tlsContexts) {
            do {
                bound.append(try await bind(listener, tlsContext: tlsContext, group: eventLoopGroup,
                                            configuration: configuration, connections: connections))
            } catch {
                for channel in bound { try? await channel.channel.close() }
                throw HTTPAPIServerError(listener: listener, reason: "\(error)")
            }
        }
        var tasks: [Task<Void, Never>] = []
        for ((listener, serverChannel), origin) in zip(zip(listeners, bound), origins) {
            logger.info("API listening", metadata: ["listener": "\(listener)", "origin": "\(origin)",
                                                    "address": "\(serverChannel.channel.localAddress.map { "\($0)" } ?? "?")"])
            tasks.append(Task { await acceptLoop(serverChannel, connection: connection, origin: origin, logger: logger) })
        }
        return HTTPAPIServer(boundAddresses: bound.compactMap { $0.channel.localAddress }, listeners: listeners,
                             serverChannels: bound.map(\.channel), acceptTasks: tasks, connections: connections, logger: logger)
    }

    /// Stops accepting, closes every open connection, cancels what they were doing and waits for
    /// all of it to end; removes the unix socket files this server created.
    public func shutdown() async {
        for channel in serverChannels { try? await channel.close() }
        connections.closeAll()
        for task in acceptTasks { task.cancel() }
        for task in acceptTasks { await task.value }
        for listener in listeners {
            if case .unix(let path, _) = listener { unlink(path) }
        }
        logger.info("API stopped")
    }

    private static func acceptLoop(_ serverChannel: NIOAsyncChannel<AcceptedConnection, Never>, connection: HTTPConnection,
                                   origin: OriginSource, logger: Logger) async {
        do {
            try await serverChannel.executeThenClose { inbound in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await accepted in inbound {
                        switch accepted {
                        case .serve(let client): group.addTask { await connection.run(client, origin: origin) }
                        case .refused: continue
                        }
                    }
                }
            }
        } catch {
            logger.debug("API accept loop ended", metadata: ["error": "\(error)"])
        }
    }

    /// `tlsContext` is given for a `.tls` listener only.
    private static func bind(_ listener: APIListener, tlsContext: NIOSSLContext?, group: any EventLoopGroup,
                             configuration: HTTPAPIConfiguration,
                             connections: ConnectionRegistry) async throws -> NIOAsyncChannel<AcceptedConnection, Never> {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        let initializer: @Sendable (any Channel) -> EventLoopFuture<AcceptedConnection> = { channel in
            initializeConnection(channel, tlsContext: tlsContext, configuration: configuration, connections: connections)
        }
        switch listener {
        case .unix(let path, let mode):
            // Only a stale socket is removed; a regular file or directory at the path fails the bind.
            let serverChannel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true,
                                                         childChannelInitializer: initializer)
            // The socket exists with the process umask's mode for a moment before this chmod;
            // clients are only told of it (and systemd's socket units set it) after start returns.
            guard chmod(path, mode_t(mode)) == 0 else {
                let reason = String(cString: strerror(errno))
                try? await serverChannel.channel.close()
                throw HTTPAPIServerError(listener: listener, reason: "chmod \(String(mode, radix: 8)): \(reason)")
            }
            return serverChannel
        case .tcp(let host, let port), .tls(let host, let port, _, _, _):
            return try await bootstrap.childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .bind(host: host, port: port, childChannelInitializer: initializer)
        case .inheritedSocket(let descriptor):
            return try await bootstrap.bind(NIOBSDSocket.Handle(descriptor), childChannelInitializer: initializer)
        }
    }

    /// The pipeline of one accepted connection. A connection over `connectionsMax` is closed
    /// here, before a byte is read. (Failing the initializer instead would fail the listener's
    /// whole accept sequence, not just this connection.) On a TLS listener the TLS handler comes
    /// first, so everything after it reads and writes plain HTTP; a client that does not complete
    /// the handshake gets an error from it and the connection is closed, like any protocol error.
    private static func initializeConnection(_ channel: any Channel, tlsContext: NIOSSLContext?, configuration: HTTPAPIConfiguration,
                                             connections: ConnectionRegistry) -> EventLoopFuture<AcceptedConnection> {
        guard connections.admit(channel, isTLS: tlsContext != nil) else {
            return channel.close().map { AcceptedConnection.refused }.recover { _ in .refused }
        }
        channel.closeFuture.whenComplete { _ in connections.remove(channel) }
        if let tlsContext {
            do {
                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tlsContext), position: .first)
                try channel.pipeline.syncOperations.addHandler(HandshakeWatch(connections: connections), position: .after(
                    try channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)))
            } catch {
                return channel.close().map { AcceptedConnection.refused }.recover { _ in .refused }
            }
        }
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = configuration.requestHeadBytesMax
        limits.maxHeaderListSize = configuration.requestHeadBytesMax
        limits.maxHeaderFieldCount = ProtocolErrorResponder.headerFieldCountMax
        // NIO's own protocol error handler answers every parse error with an empty 400; ours says
        // which limit was hit, in fleet's error shape, at the same place in the pipeline.
        return channel.pipeline.configureHTTPServerPipeline(
            withPipeliningAssistance: true, withErrorHandling: false, withOutboundHeaderValidation: true,
            withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits
        ).flatMapThrowing {
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(ProtocolErrorResponder(requestHeadBytesMax: configuration.requestHeadBytesMax))
            let deadlines = RequestDeadlines(headTimeout: configuration.requestHeadTimeout, bodyTimeout: configuration.requestBodyTimeout)
            try sync.addHandler(IdleStateHandler(readTimeout: configuration.idleTimeout), position: .first)
            try sync.addHandler(RequestStartWatcher(deadlines: deadlines), position: .first)
            try sync.addHandler(IdleConnectionCloser(deadlines: deadlines))
            return .serve(try HTTPServerAsyncChannel(wrappingChannelSynchronously: channel))
        }.flatMapError { _ in
            channel.close().map { AcceptedConnection.refused }.recover { _ in .refused }
        }
    }
}

/// What a listener's initializer hands its accept loop.
/// Tells the registry when a connection's TLS handshake has completed (it may no longer be
/// closed to make room for another), then steps out of the pipeline.
final class HandshakeWatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let connections: ConnectionRegistry

    init(connections: ConnectionRegistry) { self.connections = connections }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            connections.handshakeCompleted(context.channel)
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

enum AcceptedConnection: Sendable {
    case serve(HTTPServerAsyncChannel)
    /// Over `connectionsMax`: already closed.
    case refused
}

/// The open connections of a server, across its listeners: the bound on their number, and the
/// list `shutdown` closes.
final class ConnectionRegistry: @unchecked Sendable {
    private let connectionsMax: Int
    private let connectionsPerAddressMax: Int
    // Guards the fields below; held only for dictionary updates, never across IO.
    private let lock = NSLock()
    /// Each open connection, with the IP address it counts against (nil: the unix socket).
    private var channels: [ObjectIdentifier: (channel: any Channel, address: String?)] = [:]
    private var byAddress: [String: Int] = [:]
    /// TLS connections whose handshake has not completed, by when they were admitted (a count of
    /// admissions). When `connectionsMax` are open the oldest of these makes room for a newcomer:
    /// on the peer port only a certificate of the cluster's CA completes a handshake, so a flood
    /// from many addresses at once holds the port only until a peer connects.
    private var handshakesPending: [ObjectIdentifier: UInt64] = [:]
    private var admissions: UInt64 = 0
    private var evicted = 0
    private var isClosed = false

    /// Connections closed, their TLS handshake unfinished, to make room for a newcomer.
    var connectionsEvictedUnauthenticated: Int { lock.withLock { evicted } }
    var connectionsOpen: Int { lock.withLock { channels.count } }

    init(connectionsMax: Int, connectionsPerAddressMax: Int = .max) {
        self.connectionsMax = connectionsMax
        self.connectionsPerAddressMax = connectionsPerAddressMax
    }

    /// `isTLS`: the connection is to complete a TLS handshake (`handshakeCompleted` says when);
    /// until then it may be closed to make room for another.
    func admit(_ channel: any Channel, isTLS: Bool = false) -> Bool {
        let address = channel.remoteAddress?.ipAddress
        var evicting: (any Channel)?
        let admitted = lock.withLock { () -> Bool in
            guard !isClosed else { return false }
            if let address, byAddress[address, default: 0] >= connectionsPerAddressMax { return false }
            if channels.count >= connectionsMax, let oldest = handshakesPending.min(by: { $0.value < $1.value }) {
                // Its entry goes now, so that the slot is free at once; its close (below, outside
                // the lock) later calls `remove`, which then finds nothing.
                evicting = forget(oldest.key)
                evicted += 1
            }
            guard channels.count < connectionsMax else { return false }
            if let address { byAddress[address, default: 0] += 1 }
            channels[ObjectIdentifier(channel)] = (channel, address)
            if isTLS {
                admissions += 1
                handshakesPending[ObjectIdentifier(channel)] = admissions
            }
            return true
        }
        evicting?.close(promise: nil)
        return admitted
    }

    func handshakeCompleted(_ channel: any Channel) {
        lock.withLock { _ = handshakesPending.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    func remove(_ channel: any Channel) {
        lock.withLock { _ = forget(ObjectIdentifier(channel)) }
    }

    /// Under `lock`.
    private func forget(_ id: ObjectIdentifier) -> (any Channel)? {
        handshakesPending.removeValue(forKey: id)
        guard let removed = channels.removeValue(forKey: id) else { return nil }
        if let address = removed.address {
            let remaining = byAddress[address, default: 1] - 1
            byAddress[address] = remaining > 0 ? remaining : nil
        }
        return removed.channel
    }

    func closeAll() {
        let open = lock.withLock {
            isClosed = true
            return channels.values.map(\.channel)
        }
        for channel in open { channel.close(promise: nil) }
    }
}
