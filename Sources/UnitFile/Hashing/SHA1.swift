/// SHA-1 as specified in FIPS 180-4, section 6.1.
///
/// Only here because fleet identified unit files by the SHA-1 of their canonical form and
/// Flotilla must give the same identity; it is not used for anything that needs collision
/// resistance against an attacker. Pure Swift so this module needs nothing beyond the standard
/// library.
public struct SHA1: Sendable {
    /// Digest length in bytes.
    public static let digestByteCount = 20

    private static let blockByteCount = 64

    private var state: (UInt32, UInt32, UInt32, UInt32, UInt32) = (
        0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0
    )
    /// Bytes not yet forming a whole block; never holds 64 or more.
    private var buffer: [UInt8] = []
    /// Total message length so far, in bytes. Wraps like the 64-bit bit count of the standard
    /// would only after 2^61 bytes, far beyond any input here.
    private var messageByteCount: UInt64 = 0

    public init() {
        buffer.reserveCapacity(Self.blockByteCount)
    }

    /// The digest of `bytes` in one call.
    public static func digest(of bytes: some Sequence<UInt8>) -> [UInt8] {
        var hasher = SHA1()
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// Feeds more of the message.
    public mutating func update(_ bytes: some Sequence<UInt8>) {
        for byte in bytes {
            buffer.append(byte)
            messageByteCount &+= 1
            if buffer.count == Self.blockByteCount {
                compress(buffer)
                buffer.removeAll(keepingCapacity: true)
            }
        }
    }

    /// Pads the message (a 1 bit, zeros, the 64-bit big-endian bit length) and returns the
    /// 20-byte digest. The hasher is consumed: call on a copy to keep hashing.
    public consuming func finalize() -> [UInt8] {
        let bitCount = messageByteCount &* 8
        var padding: [UInt8] = [0x80]
        let afterMarker = (buffer.count + 1) % Self.blockByteCount
        let zeroCount = (Self.blockByteCount - 8 - afterMarker + Self.blockByteCount) % Self.blockByteCount
        padding.append(contentsOf: repeatElement(0, count: zeroCount))
        for shift in stride(from: 56, through: 0, by: -8) {
            padding.append(UInt8(truncatingIfNeeded: bitCount >> UInt64(shift)))
        }
        let savedCount = messageByteCount
        update(padding)
        messageByteCount = savedCount
        precondition(buffer.isEmpty, "SHA-1 padding must end on a block boundary")

        var digest: [UInt8] = []
        digest.reserveCapacity(Self.digestByteCount)
        for word in [state.0, state.1, state.2, state.3, state.4] {
            for shift in stride(from: 24, through: 0, by: -8) {
                digest.append(UInt8(truncatingIfNeeded: word >> UInt32(shift)))
            }
        }
        return digest
    }

    /// The compression function on one 64-byte block (FIPS 180-4, 6.1.2).
    private mutating func compress(_ block: [UInt8]) {
        var schedule = [UInt32](repeating: 0, count: 80)
        for index in 0..<16 {
            let base = index * 4
            schedule[index] =
                UInt32(block[base]) << 24 | UInt32(block[base + 1]) << 16
                | UInt32(block[base + 2]) << 8 | UInt32(block[base + 3])
        }
        for index in 16..<80 {
            schedule[index] = rotateLeft(
                schedule[index - 3] ^ schedule[index - 8] ^ schedule[index - 14] ^ schedule[index - 16], by: 1)
        }

        var (a, b, c, d, e) = state
        for index in 0..<80 {
            let mixed: UInt32
            let constant: UInt32
            switch index {
            case 0..<20:
                mixed = (b & c) | (~b & d)
                constant = 0x5A82_7999
            case 20..<40:
                mixed = b ^ c ^ d
                constant = 0x6ED9_EBA1
            case 40..<60:
                mixed = (b & c) | (b & d) | (c & d)
                constant = 0x8F1B_BCDC
            default:
                mixed = b ^ c ^ d
                constant = 0xCA62_C1D6
            }
            let temporary = rotateLeft(a, by: 5) &+ mixed &+ e &+ constant &+ schedule[index]
            e = d
            d = c
            c = rotateLeft(b, by: 30)
            b = a
            a = temporary
        }
        state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d, state.4 &+ e)
    }

    private func rotateLeft(_ value: UInt32, by count: UInt32) -> UInt32 {
        (value << count) | (value >> (32 - count))
    }
}
