/// Percent-encoding of one path segment or one query value (RFC 3986 section 2.1). Only the
/// unreserved characters and '@' (common in template instance names, legal in a segment) stay
/// literal, so a unit name holding '/', '?', '%' or '#' cannot change the route it is sent to.
public enum PercentEncoding {
    public static func encodePathSegment(_ text: String) -> String {
        encode(text, keeping: UInt8(ascii: "@"))
    }

    public static func encodeQueryValue(_ text: String) -> String {
        encode(text, keeping: nil)
    }

    private static func encode(_ text: String, keeping extra: UInt8?) -> String {
        let hexDigits = Array("0123456789ABCDEF".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if isUnreserved(byte) || byte == extra {
                bytes.append(byte)
            } else {
                bytes.append(UInt8(ascii: "%"))
                bytes.append(hexDigits[Int(byte >> 4)])
                bytes.append(hexDigits[Int(byte & 0x0F)])
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-")
            || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "~")
    }
}
