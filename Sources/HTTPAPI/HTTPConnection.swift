import ClusterCertificates
import FleetAPI
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL

typealias HTTPServerAsyncChannel = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

/// Serves the requests of one connection in order (keep-alive, with NIO's pipelining helper
/// holding later requests back), each answered before the next is read.
///
/// Ownership: the connection's task owns the channel (`executeThenClose`); the backend is called
/// from that task, off the event loop, and the answer is written through the channel's outbound
/// writer, which hands it to the channel's loop.
struct HTTPConnection: Sendable {
    let handler: APIRequestHandler
    let configuration: HTTPAPIConfiguration
    let logger: Logger

    private enum ReadOutcome {
        case request(APIRequest, version: HTTPVersion, keepAlive: Bool)
        /// The body is (or was announced) larger than `requestBodyBytesMax`.
        case bodyTooLarge(version: HTTPVersion)
    }

    private struct ProtocolViolation: Error {}

    func run(_ channel: HTTPServerAsyncChannel, origin source: OriginSource) async {
        var origin: ConnectionOrigin?
        do {
            try await channel.executeThenClose { inbound, outbound in
                var parts = inbound.makeAsyncIterator()
                while let outcome = try await readRequest(&parts) {
                    switch outcome {
                    case .bodyTooLarge(let version):
                        try await refuseBody(version: version, parts: &parts, outbound: outbound)
                        return
                    case .request(let request, let version, let keepAlive):
                        // A request is read only after the TLS handshake, so the certificate is known.
                        if origin == nil { origin = await source.resolve(channel.channel) }
                        let response = await handler.respond(to: request, origin: origin!)
                        switch response {
                        case .complete(let status, let headers, let body):
                            try await write(status: status, headers: headers, body: body, version: version,
                                            keepAlive: keepAlive, outbound: outbound)
                            if !keepAlive { return }
                        case .lineStream(let lines):
                            try await streamLines(lines, version: version, channel: channel.channel, outbound: outbound)
                            return
                        }
                    }
                }
            }
        } catch {
            // A client that goes away mid-request, or a protocol error NIO already answered
            // with 400, ends here; neither is the server's failure. On the peer port, a TLS
            // error before any request is a refused handshake (no certificate, another CA).
            if case .verifiedPeer = source, origin == nil, error is NIOSSLError || error is BoringSSLError {
                logger.warning("peer API: TLS handshake refused", metadata: [
                    "remote": "\(channel.channel.remoteAddress.map { "\($0)" } ?? "?")", "error": "\(error)",
                ])
                handler.backend.requestRefused(status: 0)
                return
            }
            logger.debug("API connection ended", metadata: ["error": "\(error)"])
        }
    }

    private func readRequest(_ parts: inout NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator)
        async throws -> ReadOutcome? {
        guard let first = try await parts.next() else { return nil }
        guard case .head(let head) = first else { throw ProtocolViolation() }
        if head.uri.utf8.count > configuration.requestHeadBytesMax { throw ProtocolViolation() }
        if let announced = head.headers.first(name: "Content-Length").flatMap(Int.init),
           announced > configuration.requestBodyBytesMax {
            return .bodyTooLarge(version: head.version)
        }
        var body: [UInt8] = []
        while let part = try await parts.next() {
            switch part {
            case .head:
                throw ProtocolViolation()
            case .body(let chunk):
                guard body.count + chunk.readableBytes <= configuration.requestBodyBytesMax else {
                    return .bodyTooLarge(version: head.version)
                }
                body.append(contentsOf: chunk.readableBytesView)
            case .end:
                let request = APIRequest(method: head.method, target: APIRequest.originForm(of: head.uri), headers: head.headers, body: body)
                return .request(request, version: head.version, keepAlive: head.isKeepAlive)
            }
        }
        return nil
    }

    /// Answers 413 and closes. The rest of the body is read and dropped first (up to another
    /// `requestBodyBytesMax`), because closing a socket with unread input resets it, and a reset
    /// can destroy the 413 before the client reads it.
    private func refuseBody(version: HTTPVersion, parts: inout NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator,
                            outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>) async throws {
        let error = APIError(status: 413, message: "request body larger than \(configuration.requestBodyBytesMax) bytes")
        guard case .complete(let status, let headers, let body) = APIResponse.error(error) else { return }
        try await write(status: status, headers: headers, body: body, version: version, keepAlive: false, outbound: outbound)
        var droppedBytes = 0
        while droppedBytes <= configuration.requestBodyBytesMax, let part = try await parts.next() {
            if case .body(let chunk) = part { droppedBytes += chunk.readableBytes }
            if case .end = part { return }
        }
    }

    private func write(status: HTTPResponseStatus, headers: HTTPHeaders, body: [UInt8], version: HTTPVersion, keepAlive: Bool,
                       outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>) async throws {
        var headers = headers
        let hasBody = status != .noContent && status != .notModified
        if hasBody { headers.replaceOrAdd(name: "Content-Length", value: String(body.count)) }
        if !keepAlive {
            headers.replaceOrAdd(name: "Connection", value: "close")
        } else if version == .http1_0 {
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
        var parts: [HTTPServerResponsePart] = [.head(HTTPResponseHead(version: version, status: status, headers: headers))]
        if hasBody, !body.isEmpty { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
        parts.append(.end(nil))
        try await outbound.write(contentsOf: parts)
    }

    /// Writes each line as one chunk until the stream ends, throws, or the client goes away.
    /// The channel closing (the client's EOF closes it) cancels the consuming task, and a
    /// cancelled consumer ends the backend's stream through its termination handler.
    private func streamLines(_ lines: AsyncThrowingStream<String, any Error>, version: HTTPVersion, channel: any Channel,
                             outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>) async throws {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Connection", value: "close")
        if version != .http1_0 { headers.add(name: "Transfer-Encoding", value: "chunked") }
        try await outbound.write(.head(HTTPResponseHead(version: version, status: .ok, headers: headers)))
        let logger = self.logger
        let consumer = Task {
            do {
                for try await line in lines {
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(string: line + "\n"))))
                }
                try await outbound.write(.end(nil))
            } catch is CancellationError {
                return
            } catch {
                // The stream failed (the unit's machine stopped answering): the response is cut
                // without its last chunk, so the client sees a truncated stream, not a clean end.
                logger.info("journal stream ended with an error", metadata: ["error": "\(error)"])
            }
        }
        channel.closeFuture.whenComplete { _ in consumer.cancel() }
        await withTaskCancellationHandler {
            await consumer.value
        } onCancel: {
            consumer.cancel()
        }
    }
}

/// The deadlines of one connection's requests, shared by the two handlers that see its bytes
/// (`RequestStartWatcher`, in front of TLS and HTTP) and its requests (`IdleConnectionCloser`).
///
/// A read-inactivity timer alone lets a client that sends one byte of a header every minute hold
/// a connection slot forever; so a request must arrive whole within fixed times of its first byte:
/// the head within `headTimeout` (the TLS handshake, on a new connection, included), and the body
/// within `bodyTimeout` of the head. Past either, the connection is closed. Only event-loop code
/// touches it.
final class RequestDeadlines {
    let headTimeout: TimeAmount
    let bodyTimeout: TimeAmount
    /// From a request's head until its response's end is written; long polls and followed
    /// journals count, and while one is in flight no deadline runs.
    var requestsInFlight = 0
    private var headDeadline: Scheduled<Void>?
    private var bodyDeadline: Scheduled<Void>?

    init(headTimeout: TimeAmount, bodyTimeout: TimeAmount) {
        self.headTimeout = headTimeout
        self.bodyTimeout = bodyTimeout
    }

    /// Bytes arrived: when they start a new request, its head must follow in time.
    func bytesArrived(on channel: any Channel) {
        guard requestsInFlight == 0, headDeadline == nil else { return }
        headDeadline = channel.eventLoop.scheduleTask(in: headTimeout) { channel.close(promise: nil) }
    }

    func headArrived(on channel: any Channel) {
        requestsInFlight += 1
        headDeadline?.cancel()
        headDeadline = nil
        bodyDeadline?.cancel()
        bodyDeadline = channel.eventLoop.scheduleTask(in: bodyTimeout) { channel.close(promise: nil) }
    }

    func bodyEnded() {
        bodyDeadline?.cancel()
        bodyDeadline = nil
    }

    func responseEnded() {
        requestsInFlight = max(0, requestsInFlight - 1)
    }

    func cancelAll() {
        headDeadline?.cancel()
        bodyDeadline?.cancel()
        headDeadline = nil
        bodyDeadline = nil
    }
}

/// First in the pipeline: sees every byte before TLS and HTTP decode it, to start the head's deadline.
final class RequestStartWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let deadlines: RequestDeadlines

    init(deadlines: RequestDeadlines) { self.deadlines = deadlines }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        deadlines.bytesArrived(on: context.channel)
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadlines.cancelAll()
        context.fireChannelInactive()
    }
}

/// Closes a kept-alive connection that has read nothing for `idleTimeout` while no request is
/// in flight, and tells `RequestDeadlines` where requests begin and end.
final class IdleConnectionCloser: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let deadlines: RequestDeadlines

    init(deadlines: RequestDeadlines) { self.deadlines = deadlines }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: deadlines.headArrived(on: context.channel)
        case .end: deadlines.bodyEnded()
        case .body: break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { deadlines.responseEnded() }
        context.write(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read, deadlines.requestsInFlight == 0 {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// How a listener learns who its connections' requests come from (see `ConnectionOrigin`).
enum OriginSource: Sendable {
    case user(APICaller)
    /// `api_listen` over TLS with the cluster's CA: a client certificate's policies join the caller.
    case userWithClientCertificate(APICaller)
    /// Read from the certificate the peer presented in the TLS handshake.
    case verifiedPeer
    case unverifiedPeer

    func resolve(_ channel: any Channel) async -> ConnectionOrigin {
        switch self {
        case .user(let caller):
            return .user(caller)
        case .userWithClientCertificate(var caller):
            if let certificate = try? await channel.nioSSL_peerCertificate().get(), let identity = PeerIdentity(certificate),
               identity.role == .client, !identity.policies.isEmpty {
                caller.policies = identity.policies
            }
            return .user(caller)
        case .unverifiedPeer:
            return .unverifiedPeer
        case .verifiedPeer:
            let certificate = try? await channel.nioSSL_peerCertificate().get()
            return .verifiedPeer(certificate.flatMap { PeerIdentity($0) })
        }
    }
}
