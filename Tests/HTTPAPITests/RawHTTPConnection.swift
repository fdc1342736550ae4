import Locking
import Foundation
import NIOCore
import NIOPosix

/// One HTTP response as read off the wire.
struct RawResponse: Sendable {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

struct RawHTTPError: Error, CustomStringConvertible {
    var description: String
}

/// A bare HTTP/1.1 client over one connection: the test writes exactly the bytes it wants
/// (garbage, pipelined or oversized requests) and reads responses as the server framed them.
/// Not shared between tasks: one test drives it.
final class RawHTTPConnection {
    private let channel: any Channel
    private var chunks: AsyncStream<[UInt8]>.AsyncIterator
    private var buffer: [UInt8] = []
    private(set) var isClosedByServer = false

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let continuation: AsyncStream<[UInt8]>.Continuation

        init(continuation: AsyncStream<[UInt8]>.Continuation) { self.continuation = continuation }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            continuation.yield(Array(unwrapInboundIn(data).readableBytesView))
        }

        func channelInactive(context: ChannelHandlerContext) {
            continuation.finish()
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }

    private init(channel: any Channel, chunks: AsyncStream<[UInt8]>) {
        self.channel = channel
        self.chunks = chunks.makeAsyncIterator()
    }

    static func connect(to address: SocketAddress, group: any EventLoopGroup) async throws -> RawHTTPConnection {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(continuation: continuation))
                }
            }
            .connect(to: address).get()
        return RawHTTPConnection(channel: channel, chunks: stream)
    }

    func send(_ text: String) async throws {
        try await send(Array(text.utf8))
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    func close() async {
        try? await channel.close()
    }

    /// Half-closes nothing: closes the whole socket, as a client that goes away does.
    func request(_ method: String, _ target: String, body: String? = nil, headers: [String] = []) async throws -> RawResponse {
        var text = "\(method) \(target) HTTP/1.1\r\nHost: test\r\n"
        for header in headers { text += header + "\r\n" }
        if let body {
            if !headers.contains(where: { $0.lowercased().hasPrefix("content-type:") }) {
                text += "Content-Type: application/json\r\n"
            }
            text += "Content-Length: \(body.utf8.count)\r\n\r\n" + body
        } else {
            text += "\r\n"
        }
        try await send(text)
        return try await readResponse()
    }

    /// Reads one response: its head, then a body framed by Content-Length, by chunks, or (with
    /// neither) by the end of the connection.
    func readResponse() async throws -> RawResponse {
        var response = try await readHead()
        if response.status == 204 || response.status == 304 { return response }
        if let length = response.header("Content-Length").flatMap(Int.init) {
            try await fill(length)
            response.body = Array(buffer.prefix(length))
            buffer.removeFirst(length)
        } else if response.header("Transfer-Encoding")?.lowercased() == "chunked" {
            while let chunk = try await readChunk() { response.body += chunk }
        } else {
            while await receive() {}
            response.body = buffer
            buffer = []
        }
        return response
    }

    /// Reads a status line and headers.
    func readHead() async throws -> RawResponse {
        let headEnd = try await readUntil([13, 10, 13, 10])
        let head = String(decoding: headEnd, as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw RawHTTPError(description: "bad status line in \(head)") }
        let headers = lines.filter { !$0.isEmpty }.map { line -> (name: String, value: String) in
            let parts = line.split(separator: ":", maxSplits: 1)
            return (String(parts[0]), parts.count > 1 ? String(parts[1].drop { $0 == " " }) : "")
        }
        return RawResponse(status: status, headers: headers, body: [])
    }

    /// One chunk of a chunked body; nil at the terminating zero-size chunk.
    func readChunk() async throws -> [UInt8]? {
        let sizeLine = String(decoding: try await readUntil([13, 10]).dropLast(2), as: UTF8.self)
        guard let sizeText = sizeLine.split(separator: ";").first, let size = Int(sizeText, radix: 16) else {
            throw RawHTTPError(description: "bad chunk size \(sizeLine.debugDescription) before \(String(decoding: buffer, as: UTF8.self).debugDescription)")
        }
        try await fill(size + 2)
        let chunk = Array(buffer.prefix(size))
        buffer.removeFirst(size + 2)
        return size == 0 ? nil : chunk
    }

    /// True once the server has closed the connection (reads until then); false if it has
    /// not within `timeout` (the connection is then closed here, so a server that never closes
    /// fails the test instead of hanging the suite).
    func waitForClose(timeout: Duration = .seconds(30)) async -> Bool {
        let channel = self.channel
        let timedOut = Locked(false)
        let watchdog = Task {
            try? await Task.sleep(for: timeout)
            guard !Task.isCancelled else { return }
            timedOut.withLock { $0 = true }
            channel.close(promise: nil)
        }
        while await receive() {}
        watchdog.cancel()
        return !timedOut.withLock { $0 }
    }

    private func readUntil(_ terminator: [UInt8]) async throws -> [UInt8] {
        var searchFrom = 0
        while true {
            if buffer.count >= terminator.count {
                for start in searchFrom...(buffer.count - terminator.count) where Array(buffer[start..<start + terminator.count]) == terminator {
                    let result = Array(buffer.prefix(start + terminator.count))
                    buffer.removeFirst(start + terminator.count)
                    return result
                }
                searchFrom = buffer.count - terminator.count + 1
            }
            guard await receive() else {
                throw RawHTTPError(description: "connection closed before \(terminator) (had \(String(decoding: buffer, as: UTF8.self)))")
            }
        }
    }

    private func fill(_ count: Int) async throws {
        while buffer.count < count {
            guard await receive() else { throw RawHTTPError(description: "connection closed after \(buffer.count) of \(count) bytes") }
        }
    }

    private func receive() async -> Bool {
        guard let chunk = await chunks.next() else {
            isClosedByServer = true
            return false
        }
        buffer += chunk
        return true
    }
}
