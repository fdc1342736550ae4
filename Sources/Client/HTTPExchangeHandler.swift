import NIOCore
import NIOHTTP1

/// One request to send on a connection, and where its answer goes. Written into the channel as
/// an outbound message, so a request is started from any thread without touching the handler.
struct PendingRequest: Sendable {
    var head: HTTPRequestHead
    var body: ByteBuffer?
    var sink: ResponseSink
    /// From the write until the answer is complete (`collect`) or its head arrives (`stream`).
    var timeout: TimeAmount
}

/// A collected answer and whether its connection may carry another request.
struct CollectedResponse: Sendable {
    var response: RawResponse
    var isReusable: Bool
}

enum ResponseSink: Sendable {
    /// The whole body, up to `bodySizeMax` bytes; more fails the request (and closes the connection).
    case collect(EventLoopPromise<CollectedResponse>, bodySizeMax: Int)
    /// A 2xx head completes `head` and the body's chunks go to `chunks` as they arrive; any other
    /// status is collected (bounded) and completes `head` with its body, and `chunks` just finishes.
    case stream(head: EventLoopPromise<RawResponse>, chunks: AsyncThrowingStream<[UInt8], any Error>.Continuation)
}

/// Failures the handler reports; the client maps them to `ClientError` (and may retry the first).
enum ExchangeFailure: Error, Sendable {
    /// The connection ended before any byte of the answer: a kept-alive connection the server had
    /// already closed looks like this, so an idempotent request may be sent again.
    case closedBeforeResponse
    case closedDuringResponse
    case timedOut
    case bodyTooLarge(Int)
    case streamReaderFellBehind
    case protocolError(String)
    case busy
}

/// Runs one HTTP/1.1 exchange at a time on its connection. All state lives on the channel's
/// event loop; the only ways in are outbound `PendingRequest`s and the inbound response parts.
final class HTTPExchangeHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = PendingRequest
    typealias OutboundOut = HTTPClientRequestPart

    /// An error answer on a streaming request is collected up to this size for its message.
    static let streamErrorBodySizeMax = 64 << 10

    private enum State {
        case idle
        case awaitingHead(ResponseSink)
        case collecting(EventLoopPromise<CollectedResponse>?, EventLoopPromise<RawResponse>?, head: HTTPResponseHead,
                        body: ByteBuffer, bodySizeMax: Int)
        case streaming(AsyncThrowingStream<[UInt8], any Error>.Continuation)
        case closed
    }

    private var state = State.idle
    private var timeoutTask: Scheduled<Void>?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if case .closed = state {
            // The connection failed or closed before this request reached it.
            Self.fail(request.sink, with: ExchangeFailure.closedBeforeResponse)
            promise?.fail(ExchangeFailure.closedBeforeResponse)
            return
        }
        guard case .idle = state else {
            Self.fail(request.sink, with: ExchangeFailure.busy)
            promise?.fail(ExchangeFailure.busy)
            return
        }
        state = .awaitingHead(request.sink)
        timeoutTask = context.eventLoop.assumeIsolated().scheduleTask(in: request.timeout) { [self] in
            self.failPending(with: ExchangeFailure.timedOut)
            context.close(promise: nil)
        }
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        if let body = request.body {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        context.write(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            receiveHead(head, context: context)
        case .body(let buffer):
            receiveBody(buffer, context: context)
        case .end:
            receiveEnd(context: context)
        }
    }

    private func receiveHead(_ head: HTTPResponseHead, context: ChannelHandlerContext) {
        guard case .awaitingHead(let sink) = state else {
            failPending(with: ExchangeFailure.protocolError("an answer arrived that no request asked for"))
            context.close(promise: nil)
            return
        }
        switch sink {
        case .collect(let promise, let bodySizeMax):
            state = .collecting(promise, nil, head: head, body: context.channel.allocator.buffer(capacity: 0),
                                bodySizeMax: bodySizeMax)
        case .stream(let headPromise, let chunks):
            if (200..<300).contains(Int(head.status.code)) {
                // A stream lives as long as its reader wants: the timeout only guarded its start.
                timeoutTask?.cancel()
                timeoutTask = nil
                state = .streaming(chunks)
                headPromise.succeed(RawResponse(status: Int(head.status.code), contentType: head.headers.first(name: "content-type"), body: []))
            } else {
                chunks.finish()
                state = .collecting(nil, headPromise, head: head, body: context.channel.allocator.buffer(capacity: 0),
                                    bodySizeMax: Self.streamErrorBodySizeMax)
            }
        }
    }

    private func receiveBody(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        switch state {
        case .collecting(let collect, let streamHead, let head, var body, let bodySizeMax):
            guard body.readableBytes + buffer.readableBytes <= bodySizeMax else {
                failPending(with: ExchangeFailure.bodyTooLarge(bodySizeMax))
                context.close(promise: nil)
                return
            }
            state = .idle  // Drops the buffer's second reference so the append does not copy it.
            var incoming = buffer
            body.writeBuffer(&incoming)
            state = .collecting(collect, streamHead, head: head, body: body, bodySizeMax: bodySizeMax)
        case .streaming(let chunks):
            if case .dropped = chunks.yield(Array(buffer.readableBytesView)) {
                failPending(with: ExchangeFailure.streamReaderFellBehind)
                context.close(promise: nil)
            }
        case .idle, .awaitingHead, .closed:
            failPending(with: ExchangeFailure.protocolError("a body arrived outside an answer"))
            context.close(promise: nil)
        }
    }

    private func receiveEnd(context: ChannelHandlerContext) {
        timeoutTask?.cancel()
        timeoutTask = nil
        switch state {
        case .collecting(let collect, let streamHead, let head, let body, _):
            state = .idle
            let response = RawResponse(status: Int(head.status.code), contentType: head.headers.first(name: "content-type"),
                                       body: Array(body.readableBytesView))
            collect?.succeed(CollectedResponse(response: response, isReusable: head.isKeepAlive))
            streamHead?.succeed(response)
        case .streaming(let chunks):
            state = .idle
            chunks.finish()
        case .idle, .awaitingHead, .closed:
            failPending(with: ExchangeFailure.protocolError("an answer ended that never began"))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .awaitingHead: failPending(with: ExchangeFailure.closedBeforeResponse)
        case .collecting, .streaming: failPending(with: ExchangeFailure.closedDuringResponse)
        case .idle, .closed: break
        }
        state = .closed
        timeoutTask?.cancel()
        timeoutTask = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            failPending(with: ExchangeFailure.protocolError("not an HTTP/1.1 answer (\(error))"))
        } else {
            failPending(with: error)
        }
        context.close(promise: nil)
    }

    /// Completes whatever is pending with `error` and leaves the handler closed: after a failure
    /// the connection's framing is unknown, so it is never reused.
    private func failPending(with error: any Error) {
        timeoutTask?.cancel()
        timeoutTask = nil
        let previous = state
        state = .closed
        switch previous {
        case .awaitingHead(let sink):
            Self.fail(sink, with: error)
        case .collecting(let collect, let streamHead, _, _, _):
            collect?.fail(error)
            streamHead?.fail(error)
        case .streaming(let chunks):
            chunks.finish(throwing: error)
        case .idle, .closed:
            break
        }
    }

    private static func fail(_ sink: ResponseSink, with error: any Error) {
        switch sink {
        case .collect(let promise, _):
            promise.fail(error)
        case .stream(let head, let chunks):
            head.fail(error)
            chunks.finish(throwing: error)
        }
    }
}
