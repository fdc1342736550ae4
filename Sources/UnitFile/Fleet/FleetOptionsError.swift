/// Why the `[X-Fleet]` section of a unit cannot be scheduled. Each message names the option
/// as the unit file spells it, or, for combinations, both options by their current names.
public enum FleetOptionsError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A key fleet did not know (fleet's `ValidateRequirements`).
    case unknownOption(key: String)
    case valueTooLong(key: String, limitBytes: Int)
    case unterminatedQuote(key: String)
    /// An empty word, e.g. `Conflicts=""`, or one that specifier expansion emptied.
    case emptyValue(key: String)
    /// Several different machine IDs. fleet silently took the first; with systemd's
    /// last-one-wins habits in mind, either choice would surprise someone, so neither is made.
    case conflictingMachineIDs([String])
    /// `Global=` takes fleet's true words (`true`, `yes`, `1`, `on`, `t`) or systemd's false
    /// words (`false`, `no`, `0`, `off`, `f`, `n`), any case. fleet read anything else as false,
    /// including `y`, which systemd reads as true; such values are refused rather than guessed.
    case invalidBoolean(key: String, value: String)
    /// A metadata requirement that is not exactly `key=value` with both sides non-empty.
    /// fleet ignored these silently, which dropped the constraint.
    case invalidMachineMetadata(key: String, value: String)
    case invalidUnitName(key: String, value: String, reason: UnitNameError)
    case invalidPattern(key: String, pattern: String, reason: GlobError)
    /// More `Conflicts=` or `Replaces=` patterns than `FleetOptions.patternsMax`.
    case tooManyPatterns(key: String, count: Int, limit: Int)
    /// `MachineOf=` names the unit itself, which can never be satisfied.
    case peerIsSelf(UnitName)
    /// A `MachineOf=` unit matches one of the unit's own `Conflicts=` or `Replaces=` globs.
    case unresolvableRequirement(peer: UnitName, option: FleetOptionName, pattern: String)
    /// Two options fleet refused to combine.
    case incompatibleOptions(FleetOptionName, FleetOptionName)

    public var description: String {
        switch self {
        case .unknownOption(let key):
            return "unrecognized option \(quoted(key)) in [X-Fleet] section"
        case .valueTooLong(let key, let limit):
            return "\(key)= value is longer than the limit of \(limit) bytes"
        case .unterminatedQuote(let key):
            return "\(key)= value has an unterminated double quote"
        case .emptyValue(let key):
            return "\(key)= has an empty value"
        case .conflictingMachineIDs(let ids):
            return "MachineID is given several different values: \(ids.map(quoted).joined(separator: ", "))"
        case .invalidBoolean(let key, let value):
            return "\(key)= value \(quoted(value)) is not a boolean"
        case .invalidMachineMetadata(let key, let value):
            return "\(key)= value \(quoted(value)) is not of the form key=value"
        case .invalidUnitName(let key, let value, let reason):
            return "\(key)= value \(quoted(value)) is not a unit name: \(reason)"
        case .invalidPattern(let key, let pattern, let reason):
            return "\(key)= pattern \(quoted(pattern)) is malformed: \(reason)"
        case .tooManyPatterns(let key, let count, let limit):
            return "\(key)= gives \(count) patterns, more than the limit of \(limit)"
        case .peerIsSelf(let name):
            return "MachineOf names the unit itself (\(name)), which can never be satisfied"
        case .unresolvableRequirement(let peer, let option, let pattern):
            return "unresolvable requirements: MachineOf unit \(quoted(peer.rawValue)) matches \(option.rawValue) pattern \(quoted(pattern))"
        case .incompatibleOptions(let first, let second):
            return "\(first.rawValue) cannot be used with \(second.rawValue)"
        }
    }
}
