/// A systemd unit name that is safe to send to the bus and to use as a file name.
///
/// This is SystemdBus's own minimal check, kept until the UnitFile module's `UnitName` (the full
/// parser with templates and specifiers) can be depended on; then this type is to be replaced by
/// it. The rules follow systemd's `unit_name_is_valid()` (src/basic/unit-name.c): at most 255
/// bytes, only `[A-Za-z0-9:_.\\@-]`, a known type suffix, a non-empty prefix, at most one `@`
/// which may not start the name. Anything else is rejected before it reaches the bus, so a bad
/// name never becomes a D-Bus error, a path traversal, or a surprise unit.
public struct UnitName: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let rawValue: String

    /// The unit types systemd 252 knows, as their file suffixes.
    public static let knownSuffixes: Set<String> = [
        "service", "socket", "target", "device", "mount", "automount",
        "swap", "timer", "path", "slice", "scope",
    ]

    /// `UNIT_NAME_MAX` in systemd is 256 including the terminating NUL.
    public static let lengthMaxBytes = 255

    public init(_ rawValue: String) throws(SystemdBusError) {
        if let reason = UnitName.invalidityReason(rawValue) {
            throw .invalidUnitName(rawValue, reason: reason)
        }
        self.rawValue = rawValue
    }

    /// Why `name` is not a valid unit name, or nil when it is.
    public static func invalidityReason(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        if bytes.isEmpty { return "empty" }
        if bytes.count > lengthMaxBytes { return "longer than \(lengthMaxBytes) bytes" }
        for byte in bytes where !isAllowed(byte) {
            return "contains the byte 0x\(String(byte, radix: 16)), not allowed in unit names"
        }
        guard let dot = bytes.lastIndex(of: UInt8(ascii: ".")) else { return "has no type suffix" }
        let suffix = String(decoding: bytes[(dot + 1)...], as: UTF8.self)
        if !knownSuffixes.contains(suffix) { return "has an unknown type suffix '.\(suffix)'" }
        let prefix = bytes[..<dot]
        if prefix.isEmpty { return "has an empty prefix" }
        let ats = prefix.filter { $0 == UInt8(ascii: "@") }.count
        if ats > 1 { return "has more than one '@'" }
        if prefix.first == UInt8(ascii: "@") { return "starts with '@'" }
        return nil
    }

    /// True for `name@.service`: a template, which cannot be started, only instantiated.
    public var isTemplate: Bool { rawValue.contains("@.") }

    /// The unit's type suffix, e.g. `service`.
    public var suffix: Substring { rawValue[rawValue.index(after: rawValue.lastIndex(of: ".")!)...] }

    public var description: String { rawValue }

    public static func < (lhs: UnitName, rhs: UnitName) -> Bool { lhs.rawValue < rhs.rawValue }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: ":"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "\\"),
            UInt8(ascii: "@"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }
}

extension UnitName {
    /// The D-Bus object path systemd gives this unit: `/org/freedesktop/systemd1/unit/` followed by
    /// the name with every byte outside `[A-Za-z0-9]` (and a leading digit) written as `_xx` in
    /// lower-case hex, as systemd's `bus_label_escape()` and sd-bus's `sd_bus_path_encode()` do.
    /// Computed here so a PropertiesChanged signal maps back to its unit without a bus round trip.
    public var objectPath: String {
        var out = "/org/freedesktop/systemd1/unit/"
        let hex = Array("0123456789abcdef".utf8)
        for (index, byte) in rawValue.utf8.enumerated() {
            let isLetter = (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            let isDigit = byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
            if isLetter || (isDigit && index > 0) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out.append("_")
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0x0f)]))
            }
        }
        return out
    }
}
