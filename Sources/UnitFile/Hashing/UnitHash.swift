/// The identity of a unit file's content: SHA-1 of its canonical form, as fleet's `unit.Hash`.
///
/// Printed as 40 lowercase hex digits, and shortened to the first 7 like fleet's `Short()`
/// (what `fleetctl list-unit-files` shows).
public struct UnitHash: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The 20 digest bytes.
    public let bytes: [UInt8]

    /// The hash of the given canonical bytes.
    public init(digestOf canonicalBytes: some Sequence<UInt8>) {
        self.bytes = SHA1.digest(of: canonicalBytes)
    }

    /// Reads 40 hex digits, either case; the form fleet's API and etcd keys carry.
    public init(hex: String) throws(UnitHashError) {
        let digits = Array(hex.utf8)
        guard digits.count == SHA1.digestByteCount * 2 else {
            throw .wrongLength(hexDigitCount: digits.count)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(SHA1.digestByteCount)
        var index = 0
        while index < digits.count {
            guard let high = Self.nibble(digits[index]), let low = Self.nibble(digits[index + 1]) else {
                throw .notHexadecimal(hex)
            }
            bytes.append(high << 4 | low)
            index += 2
        }
        self.bytes = bytes
    }

    /// 40 lowercase hex digits.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The first 7 hex digits, as fleet printed by default.
    public var short: String { String(hex.prefix(7)) }

    public var description: String { hex }

    public static func < (lhs: UnitHash, rhs: UnitHash) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    private static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// Why a hex string is not a unit hash.
public enum UnitHashError: Error, Hashable, Sendable, CustomStringConvertible {
    case wrongLength(hexDigitCount: Int)
    case notHexadecimal(String)

    public var description: String {
        switch self {
        case .wrongLength(let count):
            return "a unit hash has 40 hex digits, got \(count)"
        case .notHexadecimal(let text):
            return "not a hexadecimal unit hash: \(quoted(text))"
        }
    }
}
