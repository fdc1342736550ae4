/// What a frame carries. Raw values are part of the format: never renumber, only add.
public enum FrameKind: UInt8, Sendable, CaseIterable {
    case message = 1
    case entry = 2
    case hardState = 3
    case snapshot = 4
    case snapshotMetadata = 5
    case membership = 6
}

/// One framed value:
///
/// ```
/// offset size
///      0    2  magic 0x46 0x4C ("FL")
///      2    1  version (1)
///      3    1  kind (FrameKind)
///      4    4  body length, little-endian, at most the decoder's frameBytesMax
///      8    n  body (the value's WireCodable encoding)
///    8+n    4  CRC-32C of bytes 0..<8+n, little-endian
/// ```
///
/// The checksum covers the header too, so a flipped kind or length is caught as well as a flipped
/// body byte. The length is checked against the bound before the body is awaited, so a forged
/// length costs nothing. The version comes right after the magic so that any later layout can
/// change everything after it and still be refused clearly by this build.
public struct Frame: Equatable, Sendable {
    public static let magic: UInt16 = 0x4C46  // "FL" as little-endian bytes 0x46 0x4C
    public static let version: UInt8 = 1
    public static let supportedVersions: ClosedRange<UInt8> = 1...1
    public static let headerBytes = 8
    public static let trailerBytes = 4
    public static let overheadBytes = headerBytes + trailerBytes
    /// The default bound on a body. It must exceed the largest message the core sends: an
    /// AppendEntries of `appendEntriesBatchBytesMax` (256 KiB by default) or a snapshot chunk of
    /// `snapshotChunkBytesMax` (256 KiB), plus headers.
    public static let frameBytesMaxDefault = 4 * 1024 * 1024

    public var kind: FrameKind
    public var body: [UInt8]

    public init(kind: FrameKind, body: [UInt8]) {
        self.kind = kind
        self.body = body
    }

    /// The frame's bytes on the wire.
    public var encoded: [UInt8] {
        precondition(body.count <= Int(UInt32.max), "a frame body of \(body.count) bytes exceeds the 32-bit length")
        var writer = ByteWriter(capacity: body.count + Frame.overheadBytes)
        writer.write(Frame.magic)
        writer.write(Frame.version)
        writer.write(kind.rawValue)
        writer.write(UInt32(body.count))
        writer.write(raw: body)
        writer.write(CRC32C.checksum(writer.bytes))
        return writer.bytes
    }

    /// Frames `value` under its own kind.
    public static func encode<Value: WireCodable>(_ value: Value) -> [UInt8] {
        Frame(kind: Value.frameKind, body: value.encodedBody).encoded
    }

    /// Decodes the body as a `Value`, which must be the kind this frame carries.
    public func decode<Value: WireCodable>(_ type: Value.Type) throws(WireError) -> Value {
        guard kind == Value.frameKind else { throw .unexpectedFrameKind(expected: Value.frameKind, found: kind) }
        return try Value.decode(body: body)
    }
}

/// Splits a byte stream into frames. Feed it bytes as they arrive, then call `nextFrame()` until it
/// returns nil ("need more bytes").
///
/// Every error is final: after one, the stream cannot be trusted to be aligned on a frame boundary,
/// so the decoder keeps returning the same error and the connection should be closed. Memory is
/// bounded by `bufferedBytesMax`: feeding more than that without draining frames throws.
public struct FrameDecoder: Sendable {
    public let frameBytesMax: Int
    /// Two whole frames: one being completed plus the start of the next read.
    public var bufferedBytesMax: Int { 2 * (frameBytesMax + Frame.overheadBytes) }

    var buffer: [UInt8] = []
    /// Bytes of `buffer` already handed out; dropped lazily so feeding small pieces stays linear.
    var consumed = 0
    public private(set) var failure: WireError?

    public init(frameBytesMax: Int = Frame.frameBytesMaxDefault) {
        precondition(frameBytesMax > 0 && frameBytesMax <= Int(UInt32.max),
                     "frameBytesMax \(frameBytesMax) must be in 1...\(UInt32.max)")
        self.frameBytesMax = frameBytesMax
    }

    public var bufferedBytes: Int { buffer.count - consumed }

    public mutating func feed(_ bytes: some Collection<UInt8>) throws(WireError) {
        if let failure { throw failure }
        guard bytes.count <= bufferedBytesMax - bufferedBytes else {
            return try fail(.bufferFull(bufferedBytes: bufferedBytes + bytes.count, bufferedBytesMax: bufferedBytesMax))
        }
        if consumed > 0 && consumed >= buffer.count / 2 {
            buffer.removeFirst(consumed)
            consumed = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole frame, or nil when more bytes are needed.
    public mutating func nextFrame() throws(WireError) -> Frame? {
        if let failure { throw failure }
        let available = bufferedBytes
        guard available >= 2 else { return nil }
        let start = consumed
        let magic = UInt16(buffer[start]) | UInt16(buffer[start + 1]) << 8
        guard magic == Frame.magic else { return try fail(.badMagic(found: magic)) }
        guard available >= 3 else { return nil }
        let version = buffer[start + 2]
        guard Frame.supportedVersions.contains(version) else {
            return try fail(.unsupportedVersion(found: version, supported: Frame.supportedVersions))
        }
        guard available >= Frame.headerBytes else { return nil }
        guard let kind = FrameKind(rawValue: buffer[start + 3]) else { return try fail(.unknownFrameKind(buffer[start + 3])) }
        var length = 0
        for index in 0..<4 { length |= Int(buffer[start + 4 + index]) << (8 * index) }
        guard length <= frameBytesMax else { return try fail(.frameTooLarge(bodyBytes: length, frameBytesMax: frameBytesMax)) }
        let frameBytes = Frame.overheadBytes + length
        guard available >= frameBytes else { return nil }
        let checksumOffset = start + Frame.headerBytes + length
        var stored: UInt32 = 0
        for index in 0..<4 { stored |= UInt32(buffer[checksumOffset + index]) << UInt32(8 * index) }
        let computed = buffer.withUnsafeBytes { raw in
            CRC32C.update(0, buffer: UnsafeRawBufferPointer(rebasing: raw[start..<checksumOffset]))
        }
        guard stored == computed else { return try fail(.checksumMismatch(stored: stored, computed: computed)) }
        let body = Array(buffer[(start + Frame.headerBytes)..<checksumOffset])
        consumed += frameBytes
        if consumed == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            consumed = 0
        }
        return Frame(kind: kind, body: body)
    }

    /// The next frame decoded as `Value`; nil when more bytes are needed.
    public mutating func next<Value: WireCodable>(_ type: Value.Type) throws(WireError) -> Value? {
        guard let frame = try nextFrame() else { return nil }
        do {
            return try frame.decode(type)
        } catch {
            return try fail(error)
        }
    }

    mutating func fail<T>(_ error: WireError) throws(WireError) -> T {
        failure = error
        throw error
    }
}
