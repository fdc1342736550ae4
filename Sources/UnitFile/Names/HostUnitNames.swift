/// Unit names a cluster must never manage on any machine, whatever the machine holds: writing,
/// starting or stopping one would take the host's own plumbing (its bus, its init, the daemon
/// itself, the file systems it runs from) out of the operator's hands. Checked before a unit is
/// accepted, so it needs no machine; the agent refuses any other name the machine's systemd
/// already knows from outside the units directory (`MachineAgent`, by `FragmentPath`).
public enum HostUnitNames {
    /// Why `name` is reserved for the host, or nil if a cluster may use it.
    public static func reservation(of name: UnitName) -> String? {
        let stem = name.prefix
        if ["flotillad", "flotilla", "flotilla-lease"].contains(stem) {
            return "Flotilla's own units run the cluster on each machine"
        }
        if stem == "dbus" || stem.hasPrefix("dbus-") {
            return "the machine's message bus is how every agent talks to systemd"
        }
        if stem.hasPrefix("systemd-") {
            return "systemd-* units are systemd's own"
        }
        if name.type == .mount || name.type == .automount, let path = mountPath(stem), isSystemPath(path) {
            return "a mount of \(path) would cover the file system the machine runs from"
        }
        return nil
    }

    /// The directories a mount must not cover: on them, or, for /etc and /usr, anywhere beneath
    /// (a mount there hides system files as surely as one on the directory itself).
    static func isSystemPath(_ path: String) -> Bool {
        ["/", "/etc", "/usr", "/var"].contains(path) || path.hasPrefix("/etc/") || path.hasPrefix("/usr/")
    }

    /// The path a mount unit's name stands for (systemd's `unit_name_to_path`: `-` is `/`, each
    /// `-` a `/`, `\xNN` an escaped byte); nil if the escapes are not valid.
    static func mountPath(_ stem: String) -> String? {
        if stem == "-" { return "/" }
        var bytes: [UInt8] = [UInt8(ascii: "/")]
        let source = Array(stem.utf8)
        var index = 0
        while index < source.count {
            let byte = source[index]
            let decoded: UInt8
            if byte == UInt8(ascii: "-") {
                decoded = UInt8(ascii: "/")
                index += 1
            } else if byte == UInt8(ascii: "\\") {
                guard index + 3 < source.count, source[index + 1] == UInt8(ascii: "x"),
                      let value = UInt8(String(decoding: source[(index + 2)...(index + 3)], as: UTF8.self), radix: 16) else { return nil }
                decoded = value
                index += 4
            } else {
                decoded = byte
                index += 1
            }
            // Repeated slashes name the same directory (`etc\x2f.mount` is /etc/).
            if decoded == UInt8(ascii: "/"), bytes.last == UInt8(ascii: "/") { continue }
            bytes.append(decoded)
        }
        if bytes.count > 1, bytes.last == UInt8(ascii: "/") { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}
