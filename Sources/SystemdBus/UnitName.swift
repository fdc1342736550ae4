// Unit names come from the UnitFile module: one validation for the whole project (systemd's
// rules: allowed characters, length, type suffix, template and instance forms, nothing that could
// escape a directory), so a bad name never reaches the bus. Re-exported so that users of
// SystemdBus name units without importing UnitFile.
@_exported import struct UnitFile.UnitName
@_exported import enum UnitFile.UnitNameError

extension UnitName {
    /// True for `name@.service`: a template, which cannot be started, only instantiated.
    public var isTemplate: Bool { form == .template }

    /// The unit's type suffix without the dot, e.g. `service`.
    public var suffix: String { type.rawValue }
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
