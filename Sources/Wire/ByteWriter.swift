/// Appends fixed-width little-endian integers and length-prefixed byte strings.
///
/// Fixed widths rather than varints: every field's size is known from its type, which keeps the
/// decoder's bounds checks simple, and the few bytes lost do not matter next to the payloads.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func write(_ value: UInt8) { bytes.append(value) }

    public mutating func write(_ value: Bool) { bytes.append(value ? 1 : 0) }

    public mutating func write(_ value: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: value))
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
    }

    public mutating func write(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    public mutating func write(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    /// Non-negative counts and offsets (Raft uses `Int` for byte counts). A negative value here is
    /// a bug in the caller, not bad input.
    public mutating func write(count value: Int) {
        precondition(value >= 0, "negative count \(value) cannot be encoded")
        write(UInt64(value))
    }

    /// A 32-bit length, then the bytes.
    public mutating func write(lengthPrefixed data: some Collection<UInt8>) {
        precondition(data.count <= Int(UInt32.max), "byte string of \(data.count) bytes exceeds the 32-bit length prefix")
        write(UInt32(data.count))
        bytes.append(contentsOf: data)
    }

    public mutating func write(raw data: some Sequence<UInt8>) { bytes.append(contentsOf: data) }

    /// Overwrites four bytes at `offset` (used to fill in a length once the body is written).
    public mutating func patch(_ value: UInt32, at offset: Int) {
        precondition(offset >= 0 && offset + 4 <= bytes.count, "patch at \(offset) outside \(bytes.count) bytes")
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> UInt32(8 * index)) }
    }
}

/// Reads what `ByteWriter` wrote. Every read checks the remaining length first and throws
/// `WireError.truncated`; lengths read from the input are compared with the bytes actually
/// present before anything is allocated, so a forged length cannot make the reader allocate.
public struct ByteReader: Sendable {
    let bytes: [UInt8]
    public private(set) var position: Int
    let end: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.position = 0
        self.end = bytes.count
    }

    public var remainingBytes: Int { end - position }
    public var isAtEnd: Bool { position == end }

    mutating func need(_ count: Int, _ field: String) throws(WireError) {
        guard count <= remainingBytes else {
            throw .truncated(field: field, neededBytes: count, availableBytes: remainingBytes)
        }
    }

    public mutating func readUInt8(_ field: String) throws(WireError) -> UInt8 {
        try need(1, field)
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func readBool(_ field: String) throws(WireError) -> Bool {
        switch try readUInt8(field) {
        case 0: return false
        case 1: return true
        case let other: throw .invalidValue(field: field, reason: "boolean byte \(other)")
        }
    }

    public mutating func readUInt16(_ field: String) throws(WireError) -> UInt16 {
        try need(2, field)
        defer { position += 2 }
        return UInt16(bytes[position]) | UInt16(bytes[position + 1]) << 8
    }

    public mutating func readUInt32(_ field: String) throws(WireError) -> UInt32 {
        try need(4, field)
        var value: UInt32 = 0
        for index in 0..<4 { value |= UInt32(bytes[position + index]) << UInt32(8 * index) }
        position += 4
        return value
    }

    public mutating func readUInt64(_ field: String) throws(WireError) -> UInt64 {
        try need(8, field)
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(bytes[position + index]) << UInt64(8 * index) }
        position += 8
        return value
    }

    /// A count written by `write(count:)`: must fit in a non-negative `Int`.
    public mutating func readCount(_ field: String) throws(WireError) -> Int {
        let raw = try readUInt64(field)
        guard raw <= UInt64(Int.max) else { throw .invalidValue(field: field, reason: "count \(raw) exceeds Int.max") }
        return Int(raw)
    }

    public mutating func readLengthPrefixed(_ field: String) throws(WireError) -> [UInt8] {
        let length = Int(try readUInt32(field))
        return try readRaw(length, field)
    }

    public mutating func readRaw(_ count: Int, _ field: String) throws(WireError) -> [UInt8] {
        precondition(count >= 0, "negative read of \(count) bytes")
        try need(count, field)
        defer { position += count }
        return Array(bytes[position..<position + count])
    }

    /// A count of elements that each take at least `elementBytesMin` bytes: checked against the
    /// bytes left, so that `reserveCapacity(count)` is bounded by the input actually present.
    public mutating func readElementCount(_ field: String, elementBytesMin: Int) throws(WireError) -> Int {
        precondition(elementBytesMin > 0, "elementBytesMin must be positive")
        let count = Int(try readUInt32(field))
        guard count <= remainingBytes / elementBytesMin else {
            throw .truncated(field: field, neededBytes: count * elementBytesMin, availableBytes: remainingBytes)
        }
        return count
    }

    public func expectEnd() throws(WireError) {
        guard isAtEnd else { throw .trailingBytes(count: remainingBytes) }
    }
}
