import FleetAPI
import NIOCore
import NIOHTTP1

/// Answers a request the HTTP decoder could not parse, in fleet's error shape, then lets the
/// connection close: 431 when the head passed `requestHeadBytesMax` (or the header count), 400
/// for anything else malformed. It takes the place of NIO's own protocol error handler, which
/// answers every parse error with an empty 400, so that a client learns which limit it hit.
///
/// The decoder's errors are fatal to the connection: ByteToMessageHandler closes it right after
/// this handler returns, so the answer is written and flushed here, without waiting.
final class ProtocolErrorResponder: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Header fields a request may carry (the decoder's limit; more is a 431).
    static let headerFieldCountMax = 256

    private let requestHeadBytesMax: Int
    /// A response already begun cannot be followed by another: then the client only sees the close.
    private var isResponseOpen = false

    init(requestHeadBytesMax: Int) {
        self.requestHeadBytesMax = requestHeadBytesMax
    }

    static func answer(to error: HTTPParserError, requestHeadBytesMax: Int, headerFieldCountMax: Int = headerFieldCountMax) -> (status: HTTPResponseStatus, message: String) {
        switch error {
        case .headerOverflow:
            return (.requestHeaderFieldsTooLarge,
                    "request head too large: at most \(requestHeadBytesMax) bytes of header fields and \(headerFieldCountMax) fields")
        default:
            return (.badRequest, "malformed HTTP request: \(error)")
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let parserError = error as? HTTPParserError, !isResponseOpen {
            let (status, message) = Self.answer(to: parserError, requestHeadBytesMax: requestHeadBytesMax)
            let body = context.channel.allocator.buffer(bytes: JSONBodies.encode(FleetErrorBody(code: Int(status.code), message: message)))
            let headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", String(body.readableBytes)),
                                       ("Connection", "close")])
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200: isResponseOpen = true
        case .head, .body: break
        case .end: isResponseOpen = false
        }
        context.write(data, promise: promise)
    }
}
