import NIOCore
import NIOHTTP1
import NIOPosix
import Locking

/// A minimal HTTP/1.1 server on a unix socket for testing the Client's transport itself
/// (keep-alive, timeouts, bounded bodies, chunked streams, garbage answers): behaviours a real
/// API server would not let a test provoke. The CLI is tested against HTTPAPI's server.
final class MiniHTTPServer: Sendable {
    struct Request: Sendable {
        var method: String
        var uri: String
        var body: [UInt8]
    }

    enum Reply: Sendable {
        case full(status: Int, contentType: String?, body: [UInt8], delay: TimeAmount, keepAlive: Bool)
        /// A chunked body: each chunk after its delay; then the answer ends (or, if `end` is
        /// false, stays open until the client closes it).
        case chunked(chunks: [(TimeAmount, [UInt8])], end: Bool)
        /// Close without answering.
        case close

        static func json(_ text: String, status: Int = 200) -> Reply {
            .full(status: status, contentType: "application/json", body: Array(text.utf8), delay: .zero, keepAlive: true)
        }
    }

    let socketPath: String
    private let channel: any Channel

    init(socketPath: String, route: @escaping @Sendable (Request) -> Reply) async throws {
        self.socketPath = socketPath
        let recorder = Recorder()
        self.recorder = recorder
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .childChannelInitializer { channel in
                recorder.accepted.withLock { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(Handler(route: route, log: { request in
                        recorder.requests.withLock { $0.append(request) }
                    }))
                }
            }
            .bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true).get()
        self.channel = channel
    }

    private final class Recorder: Sendable {
        let accepted = Locked(0)
        let requests = Locked<[Request]>([])
    }

    private let recorder: Recorder

    var connections: Int { recorder.accepted.withLock { $0 } }
    var log: [Request] { recorder.requests.withLock { $0 } }

    func shutdown() async {
        try? await channel.close()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let route: @Sendable (Request) -> Reply
        let log: @Sendable (Request) -> Void
        var head: HTTPRequestHead?
        var body: [UInt8] = []

        init(route: @escaping @Sendable (Request) -> Reply, log: @escaping @Sendable (Request) -> Void) {
            self.route = route
            self.log = log
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = []
            case .body(let buffer):
                body.append(contentsOf: buffer.readableBytesView)
            case .end:
                guard let head else { return }
                let request = Request(method: head.method.rawValue, uri: head.uri, body: body)
                log(request)
                respond(route(request), to: head, context: context)
            }
        }

        private func respond(_ reply: Reply, to request: HTTPRequestHead, context: ChannelHandlerContext) {
            let loop = context.eventLoop.assumeIsolated()
            switch reply {
            case .full(let status, let contentType, let body, let delay, let keepAlive):
                var headers = HTTPHeaders()
                if let contentType { headers.add(name: "Content-Type", value: contentType) }
                headers.add(name: "Content-Length", value: String(body.count))
                if !keepAlive { headers.add(name: "Connection", value: "close") }
                let send = {
                    let head = HTTPResponseHead(version: request.version, status: HTTPResponseStatus(statusCode: status), headers: headers)
                    context.write(self.wrapOutboundOut(.head(head)), promise: nil)
                    context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
                    context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
                    if !keepAlive { context.close(promise: nil) }
                }
                if delay == .zero { send() } else { loop.scheduleTask(in: delay) { send() } }
            case .chunked(let chunks, let end):
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "text/plain")
                headers.add(name: "Transfer-Encoding", value: "chunked")
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: .ok, headers: headers))), promise: nil)
                var total = TimeAmount.zero
                for (delay, bytes) in chunks {
                    total = total + delay
                    loop.scheduleTask(in: total) {
                        context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: bytes)))), promise: nil)
                    }
                }
                if end {
                    loop.scheduleTask(in: total + .milliseconds(1)) {
                        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
                    }
                }
            case .close:
                context.close(promise: nil)
            }
        }
    }
}
