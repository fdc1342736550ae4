import NIOCore

/// Push-pull messages over TCP: one frame per direction per connection.
///
/// ```
/// frame := length:u32be payload[length]     payload = MembershipCodec bytes (its own version byte)
/// ```
/// The length is checked against the receiver's bound before any payload is buffered, so a
/// peer (or garbage) announcing a huge frame costs four bytes, not memory.
enum StreamFrame {
    static let headerBytes = 4

    static func encode(_ payload: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: headerBytes + payload.count)
        buffer.writeInteger(UInt32(payload.count), endianness: .big)
        buffer.writeBytes(payload)
        return buffer
    }

    enum DecodeError: Error, Equatable {
        case frameTooLarge(bytes: Int, bytesMax: Int)
        case emptyFrame
    }

    /// Accumulates the bytes of one connection until a whole frame is there.
    struct Decoder {
        let frameBytesMax: Int
        private var pending: ByteBuffer?

        init(frameBytesMax: Int) { self.frameBytesMax = frameBytesMax }

        /// Appends `bytes`; returns the first whole frame's payload once one has arrived.
        mutating func feed(_ bytes: inout ByteBuffer) throws(DecodeError) -> [UInt8]? {
            if pending == nil {
                pending = bytes
            } else {
                pending!.writeBuffer(&bytes)
            }
            guard let buffer = pending, let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big,
                                                                      as: UInt32.self) else { return nil }
            guard length > 0 else { throw .emptyFrame }
            guard Int(length) <= frameBytesMax else { throw .frameTooLarge(bytes: Int(length), bytesMax: frameBytesMax) }
            guard buffer.readableBytes >= StreamFrame.headerBytes + Int(length) else { return nil }
            return buffer.getBytes(at: buffer.readerIndex + StreamFrame.headerBytes, length: Int(length))
        }
    }
}
