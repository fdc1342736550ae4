/// The scheduling options of the `[X-Fleet]` section, named by their current spelling.
public enum FleetOptionName: String, Hashable, Sendable, CaseIterable, Comparable {
    /// Run only on the machine with this ID.
    case machineID = "MachineID"
    /// Run on the machine that runs this other unit (fleet called these "peers").
    case machineOf = "MachineOf"
    /// Run only on machines whose metadata has these key=value pairs.
    case machineMetadata = "MachineMetadata"
    /// Never run on a machine running a unit whose name matches one of these globs.
    case conflicts = "Conflicts"
    /// Push units matching these globs off the machine this unit lands on.
    case replaces = "Replaces"
    /// Run on every machine (whose metadata matches).
    case global = "Global"

    /// The option a key in `[X-Fleet]` sets, current or deprecated spelling (fleet ≤ 0.8):
    /// `X-ConditionMachineID`, `X-ConditionMachineBootID` (which fleet, too, treated as a
    /// machine ID requirement), `X-ConditionMachineOf`, `X-ConditionMachineMetadata` and
    /// `X-Conflicts`. Keys are case-sensitive, as in fleet and systemd.
    public init?(key: String) {
        if let current = FleetOptionName(rawValue: key) {
            self = current
            return
        }
        switch key {
        case "X-ConditionMachineID", "X-ConditionMachineBootID": self = .machineID
        case "X-ConditionMachineOf": self = .machineOf
        case "X-ConditionMachineMetadata": self = .machineMetadata
        case "X-Conflicts": self = .conflicts
        default: return nil
        }
    }

    public static func < (lhs: FleetOptionName, rhs: FleetOptionName) -> Bool {
        lhs.rawValue < rhs.rawValue
    }
}
