#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import FleetAPI
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import Locking

/// HTTP/1.1 to one endpoint over NIO, with a small pool of kept-alive connections.
///
/// Ownership: a connection is either in `idleChannels` (owned by the pool) or checked out by one
/// request (owned by that request until it is checked in or closed), never both. A connection
/// that failed, timed out, was cancelled, streamed, or was answered without keep-alive is closed,
/// never pooled.
final class HTTPTransport: Sendable {
    let endpoint: APIEndpoint
    let eventLoopGroup: any EventLoopGroup
    let idleConnectionsMax: Int
    /// For an `https` endpoint, the TLS context every connection shares (or why there is none);
    /// nil for the others.
    private let tlsContext: Result<NIOSSLContext, ClientError>?
    private let idleChannels = Locked<[any Channel]>([])

    /// The ACL token sent with every request (unless a relayed caller brings its own).
    let token: String?

    init(endpoint: APIEndpoint, eventLoopGroup: any EventLoopGroup, idleConnectionsMax: Int, tls: ClientTLS?, token: String? = nil) {
        precondition(idleConnectionsMax >= 0, "idleConnectionsMax must not be negative, got \(idleConnectionsMax)")
        self.token = token
        self.endpoint = endpoint
        self.eventLoopGroup = eventLoopGroup
        self.idleConnectionsMax = idleConnectionsMax
        switch endpoint {
        case .https: self.tlsContext = (tls ?? ClientTLS()).makeContext(endpoint: endpoint)
        case .unix, .tcp: self.tlsContext = nil
        }
    }

    deinit {
        for channel in idleChannels.withLock({ $0 }) { channel.close(promise: nil) }
    }

    func closeIdleConnections() {
        let channels = idleChannels.withLock { channels in
            defer { channels.removeAll() }
            return channels
        }
        for channel in channels { channel.close(promise: nil) }
    }

    /// Sends one request and collects its answer. A request that met a kept-alive connection the
    /// server had already closed (nothing came back at all) is sent once more on a new
    /// connection, if its method is idempotent.
    func exchange(method: HTTPMethod, pathAndQuery: String, body: [UInt8]?, timeout: TimeAmount,
                  bodySizeMax: Int) async throws(ClientError) -> RawResponse {
        var isRetry = false
        while true {
            let (channel, isReused) = try await checkOut(timeout: timeout)
            let promise = channel.eventLoop.makePromise(of: CollectedResponse.self)
            let request = PendingRequest(head: requestHead(method: method, pathAndQuery: pathAndQuery, bodyCount: body?.count),
                                         body: body.map { ByteBuffer(bytes: $0) },
                                         sink: .collect(promise, bodySizeMax: bodySizeMax), timeout: timeout)
            // A write that never reached HTTPExchangeHandler (the connection closed and its
            // handlers were gone) would leave the promise pending forever; failing it again
            // when the handler already did is a no-op.
            channel.writeAndFlush(request).whenFailure { _ in
                promise.fail(ExchangeFailure.closedBeforeResponse)
                channel.close(promise: nil)
            }
            do {
                let collected = try await withTaskCancellationHandler {
                    try await promise.futureResult.get()
                } onCancel: {
                    channel.close(promise: nil)
                }
                if collected.isReusable { checkIn(channel) } else { channel.close(promise: nil) }
                return collected.response
            } catch {
                channel.close(promise: nil)
                if isReused, !isRetry, case ExchangeFailure.closedBeforeResponse = error, Self.isIdempotent(method) {
                    isRetry = true
                    continue
                }
                throw mapFailure(error)
            }
        }
    }

    /// Opens a connection of its own (never pooled) for a streaming answer.
    func openStream(method: HTTPMethod, pathAndQuery: String, timeout: TimeAmount, chunkBufferMax: Int)
        async throws(ClientError) -> (channel: any Channel, head: RawResponse, chunks: AsyncThrowingStream<[UInt8], any Error>) {
        let channel = try await connect(timeout: timeout)
        let (chunks, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream(bufferingPolicy: .bufferingOldest(chunkBufferMax))
        let headPromise = channel.eventLoop.makePromise(of: RawResponse.self)
        let request = PendingRequest(head: requestHead(method: method, pathAndQuery: pathAndQuery, bodyCount: nil),
                                     body: nil, sink: .stream(head: headPromise, chunks: continuation), timeout: timeout)
        channel.writeAndFlush(request).whenFailure { _ in
            headPromise.fail(ExchangeFailure.closedBeforeResponse)
            channel.close(promise: nil)
        }
        do {
            let head = try await withTaskCancellationHandler {
                try await headPromise.futureResult.get()
            } onCancel: {
                channel.close(promise: nil)
            }
            return (channel, head, chunks)
        } catch {
            channel.close(promise: nil)
            throw mapFailure(error)
        }
    }

    private func requestHead(method: HTTPMethod, pathAndQuery: String, bodyCount: Int?) -> HTTPRequestHead {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: endpoint.hostHeader)
        headers.add(name: "User-Agent", value: "flotilla-client")
        headers.add(name: "Accept", value: "application/json")
        // A peer relaying a request names the caller it relays for (the peer port alone reads it).
        if let caller = APICaller.current { headers.add(name: APICaller.headerName, value: caller.headerValue) }
        // The relayed caller's token, else this client's own (flotillactl --token).
        if let token = APICaller.current?.token ?? self.token { headers.add(name: APICaller.tokenHeaderName, value: token) }
        if let policies = APICaller.current?.policies { headers.add(name: APICaller.policiesHeaderName, value: policies.joined(separator: ",")) }
        // A write relayed or retried keeps the key it entered the cluster with.
        if let writeID = WriteID.current { headers.add(name: WriteID.headerName, value: writeID.headerValue) }
        if let bodyCount {
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(bodyCount))
        } else if method == .PUT || method == .POST || method == .PATCH {
            headers.add(name: "Content-Length", value: "0")
        }
        return HTTPRequestHead(version: .http1_1, method: method, uri: pathAndQuery, headers: headers)
    }

    private static func isIdempotent(_ method: HTTPMethod) -> Bool {
        method == .GET || method == .HEAD || method == .PUT
    }

    private func checkOut(timeout: TimeAmount) async throws(ClientError) -> (any Channel, isReused: Bool) {
        while let channel = idleChannels.withLock({ $0.popLast() }) {
            if channel.isActive { return (channel, true) }
            channel.close(promise: nil)
        }
        return (try await connect(timeout: timeout), false)
    }

    private func checkIn(_ channel: any Channel) {
        guard channel.isActive else { return }
        let isPooled = idleChannels.withLock { channels -> Bool in
            guard channels.count < idleConnectionsMax else { return false }
            channels.append(channel)
            return true
        }
        if !isPooled { channel.close(promise: nil) }
    }

    private func connect(timeout: TimeAmount) async throws(ClientError) -> any Channel {
        guard let bootstrap = ClientBootstrap(validatingGroup: eventLoopGroup) else {
            throw .connection("the event loop group given to FlotillaClient is not a NIOPosix group")
        }
        // The TLS handler goes first, so the HTTP handlers after it read and write plain HTTP.
        var tls: (context: NIOSSLContext, serverHostname: String?)?
        switch (endpoint, tlsContext) {
        case (.https(let host, _), .success(let context)?): tls = (context, ClientTLS.serverHostname(host))
        case (_, .failure(let error)?): throw error
        case (.https, nil), (.unix, _), (.tcp, _): tls = nil
        }
        // Completed by `TLSHandshakeWaiter` (or below, if the connection never opens); completing
        // an already completed promise does nothing.
        let handshake = eventLoopGroup.any().makePromise(of: Void.self)
        let configured = bootstrap
            .connectTimeout(timeout)
            .channelInitializer { [tls] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: tls.context, serverHostname: tls.serverHostname))
                        try channel.pipeline.syncOperations.addHandler(TLSHandshakeWaiter(handshake: handshake))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(HTTPExchangeHandler())
                }
            }
        let channel: any Channel
        do {
            switch endpoint {
            case .unix(let path):
                channel = try await configured.connect(unixDomainSocketPath: path).get()
            case .tcp(let host, let port), .https(let host, let port):
                let bootstrap = configured.channelOption(.tcpOption(.tcp_nodelay), value: 1)
                // An IP literal without NIO's resolver: its AAAA lookup can outlive the connection
                // and its event loop (see Transport's `connect(peer:)`).
                if let literal = try? SocketAddress(ipAddress: host, port: port) {
                    channel = try await bootstrap.connect(to: literal).get()
                } else {
                    channel = try await bootstrap.connect(host: host, port: port).get()
                }
            }
        } catch {
            handshake.fail(error)
            throw .connection("cannot connect to flotillad at \(endpoint): \(Self.describeConnectFailure(error)) (is flotillad running?)")
        }
        guard tls != nil else {
            handshake.succeed(())
            return channel
        }
        // The request is written only after the handshake, so a handshake failure is reported as
        // what it is, and never races with the request for the connection.
        let deadline = channel.eventLoop.scheduleTask(in: timeout) {
            handshake.fail(ExchangeFailure.timedOut)
            channel.close(promise: nil)
        }
        do {
            try await handshake.futureResult.get()
            deadline.cancel()
            return channel
        } catch {
            deadline.cancel()
            channel.close(promise: nil)
            throw mapFailure(error)
        }
    }

    /// Maps what failed a connection or an exchange to the error the caller sees.
    private func mapFailure(_ error: any Error) -> ClientError {
        if let clientError = error as? ClientError { return clientError }
        if error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError {
            return .connection(ClientTLS.describeHandshakeFailure(error, endpoint: endpoint))
        }
        if let failure = error as? ExchangeFailure {
            switch failure {
            case .closedBeforeResponse:
                return .connection("flotillad at \(endpoint) closed the connection without answering")
            case .closedDuringResponse:
                return .connection("flotillad at \(endpoint) closed the connection in the middle of its answer")
            case .timedOut:
                return .timeout
            case .bodyTooLarge(let sizeMax):
                return .invalidResponse("answer larger than \(sizeMax) bytes")
            case .streamReaderFellBehind:
                return .connection("the stream's reader fell behind and the stream was closed")
            case .protocolError(let reason):
                if case .tcp = endpoint {
                    // A TLS server answers plain HTTP with a TLS alert, which is not HTTP.
                    return .invalidResponse("\(reason); if flotillad at \(endpoint) serves HTTPS, use an https:// endpoint")
                }
                return .invalidResponse(reason)
            case .busy:
                return .connection("internal error: a connection was given two requests at once")
            }
        }
        if error is CancellationError || error is ChannelError {
            return .connection("request to flotillad at \(endpoint) was cancelled or its connection closed (\(error))")
        }
        return .connection("request to flotillad at \(endpoint) failed: \(Self.describeConnectFailure(error))")
    }

    static func describeConnectFailure(_ error: any Error) -> String {
        if let ioError = error as? IOError {
            return String(cString: strerror(ioError.errnoCode))
        }
        if let connectionError = error as? NIOConnectionError {
            if let first = connectionError.connectionErrors.first {
                return describeConnectFailure(first.error)
            }
            if let dnsError = connectionError.dnsAError ?? connectionError.dnsAAAAError {
                return "cannot resolve \(connectionError.host): \(dnsError)"
            }
            return "no address for \(connectionError.host)"
        }
        if error is ChannelError, case ChannelError.connectTimeout = error as! ChannelError {
            return "timed out connecting"
        }
        return "\(error)"
    }
}

/// Completes `handshake` when the TLS handshake of its connection succeeds, or fails it with
/// whatever ended the connection first. Sits right after `NIOSSLClientHandler`.
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let handshake: EventLoopPromise<Void>

    init(handshake: EventLoopPromise<Void>) {
        self.handshake = handshake
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent {
            handshake.succeed(())
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        handshake.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshake.fail(ExchangeFailure.closedBeforeResponse)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        handshake.fail(ExchangeFailure.closedBeforeResponse)
    }
}
