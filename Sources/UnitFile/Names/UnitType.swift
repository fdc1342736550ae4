/// The unit types systemd knows, by the suffix of the unit name (systemd.unit(5)).
///
/// The list is systemd's current one; fleet's API also accepted the removed `busname` and
/// `snapshot` types, which no systemd of today loads, so they are not here.
public enum UnitType: String, CaseIterable, Hashable, Sendable, Comparable {
    case service
    case socket
    case device
    case mount
    case automount
    case swap
    case target
    case path
    case timer
    case slice
    case scope

    /// fleet scheduled only these types (fleet's `unit.RecognizedUnitType`); the others are
    /// machine-local by nature (a swap, a slice) or created at run time (a scope).
    public var isSchedulableByFleet: Bool {
        switch self {
        case .service, .socket, .device, .mount, .automount, .timer, .path:
            return true
        case .swap, .target, .slice, .scope:
            return false
        }
    }

    /// Types systemd will instantiate from a template (`unit_type_may_template()`): a name such
    /// as `foo@.mount` is well formed, but systemd refuses to load it.
    public var supportsTemplates: Bool {
        switch self {
        case .service, .socket, .target, .timer, .path:
            return true
        case .device, .mount, .automount, .swap, .slice, .scope:
            return false
        }
    }

    /// The suffix with its dot, e.g. `.service`.
    public var suffix: String { "." + rawValue }

    public static func < (lhs: UnitType, rhs: UnitType) -> Bool {
        lhs.rawValue < rhs.rawValue
    }
}
