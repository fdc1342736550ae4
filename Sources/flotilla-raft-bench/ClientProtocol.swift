import NIOCore

// The benchmark's client protocol: tiny length-prefixed request/response frames over TCP,
// little-endian. Not Wire: clients are not peers, and this protocol lives only as long as the
// benchmark does.
//
//   request:  u32 body length | u64 request ID | payload (the command to propose)
//   response: u32 body length (25) | u64 request ID | u8 status | u64 value | u64 index
//
// status 0: applied on this replica, value = nanoseconds from propose to applied (the leader's
// commit latency), index = the entry's index; 1: not the leader, value = the leader's ID or 0;
// 2: failed (dropped, superseded, overloaded, stopped).

enum ClientProtocol {
    static let payloadBytesMax = 64 * 1024
    static let responseBodyBytes = 25
}

struct ProposeRequest: Sendable {
    var requestID: UInt64
    var payload: [UInt8]

    func write(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(8 + payload.count), endianness: .little)
        buffer.writeInteger(requestID, endianness: .little)
        buffer.writeBytes(payload)
    }
}

struct ProposeResponse: Sendable {
    enum Status: UInt8, Sendable {
        case applied = 0
        case notLeader = 1
        case failed = 2
    }

    var requestID: UInt64
    var status: Status
    var value: UInt64
    var index: UInt64

    func write(into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(ClientProtocol.responseBodyBytes), endianness: .little)
        buffer.writeInteger(requestID, endianness: .little)
        buffer.writeInteger(status.rawValue)
        buffer.writeInteger(value, endianness: .little)
        buffer.writeInteger(index, endianness: .little)
    }
}

enum ClientProtocolError: Error {
    case badLength(Int)
    case badStatus(UInt8)
}

/// Splits requests; a bad length closes the connection (the error reaches `errorCaught`).
struct ProposeRequestDecoder: ByteToMessageDecoder {
    typealias InboundOut = ProposeRequest

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt32.self) else {
            return .needMoreData
        }
        let bodyLength = Int(length)
        guard bodyLength >= 8, bodyLength <= 8 + ClientProtocol.payloadBytesMax else {
            throw ClientProtocolError.badLength(bodyLength)
        }
        guard buffer.readableBytes >= 4 + bodyLength else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        let requestID = buffer.readInteger(endianness: .little, as: UInt64.self)!
        let payload = buffer.readBytes(length: bodyLength - 8)!
        context.fireChannelRead(wrapInboundOut(ProposeRequest(requestID: requestID, payload: payload)))
        return .continue
    }
}

struct ProposeResponseDecoder: ByteToMessageDecoder {
    typealias InboundOut = ProposeResponse

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt32.self) else {
            return .needMoreData
        }
        guard Int(length) == ClientProtocol.responseBodyBytes else { throw ClientProtocolError.badLength(Int(length)) }
        guard buffer.readableBytes >= 4 + ClientProtocol.responseBodyBytes else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        let requestID = buffer.readInteger(endianness: .little, as: UInt64.self)!
        let rawStatus = buffer.readInteger(as: UInt8.self)!
        let value = buffer.readInteger(endianness: .little, as: UInt64.self)!
        let index = buffer.readInteger(endianness: .little, as: UInt64.self)!
        guard let status = ProposeResponse.Status(rawValue: rawStatus) else { throw ClientProtocolError.badStatus(rawStatus) }
        context.fireChannelRead(wrapInboundOut(ProposeResponse(requestID: requestID, status: status, value: value, index: index)))
        return .continue
    }
}
