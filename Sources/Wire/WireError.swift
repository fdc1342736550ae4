/// Why bytes from outside could not be decoded. Every decoding path throws one of these rather
/// than trapping: a peer, a disk or a bug elsewhere must never be able to crash the decoder.
public enum WireError: Error, Equatable, Sendable {
    /// The first two bytes of a frame are not `Frame.magic`: the stream is not ours, or is desynchronised.
    case badMagic(found: UInt16)
    /// A frame of a format version this build does not speak. Peers of different versions must
    /// not guess at each other's layouts; the connection is refused with this error.
    case unsupportedVersion(found: UInt8, supported: ClosedRange<UInt8>)
    case unknownFrameKind(UInt8)
    /// The header announces a body larger than the decoder's bound; nothing is allocated for it.
    case frameTooLarge(bodyBytes: Int, frameBytesMax: Int)
    case checksumMismatch(stored: UInt32, computed: UInt32)
    /// A body ended before a field it announces (`field` names it).
    case truncated(field: String, neededBytes: Int, availableBytes: Int)
    /// A body decoded completely but bytes were left over.
    case trailingBytes(count: Int)
    case unknownTag(field: String, tag: UInt8)
    /// A field is well formed but breaks an invariant of its type (zero node ID, duplicate voter, ...).
    case invalidValue(field: String, reason: String)
    /// `Frame.decode` asked for one kind of value and the frame holds another.
    case unexpectedFrameKind(expected: FrameKind, found: FrameKind)
    /// The decoder was fed more bytes than it may hold before they are drained with `nextFrame()`.
    case bufferFull(bufferedBytes: Int, bufferedBytesMax: Int)
}
