import UnitFile

/// What this machine should do with a unit (fleet's `loaded` and `launched`; an `inactive` unit
/// is simply not desired here).
public enum DesiredState: UInt8, Hashable, Sendable, CustomStringConvertible {
    /// The file is on disk and loaded by systemd, the unit not running.
    case loaded
    /// The unit is started.
    case launched

    public var description: String { self == .loaded ? "loaded" : "launched" }
}

/// A unit this machine should hold: placed here by the scheduler, or global and matching.
public struct DesiredUnit: Hashable, Sendable {
    public var name: UnitName
    public var state: DesiredState
    public var hash: UnitHash
    /// The canonical file whose hash is `hash`.
    public var file: [UInt8]

    public init(name: UnitName, state: DesiredState, hash: UnitHash, file: [UInt8]) {
        self.name = name
        self.state = state
        self.hash = hash
        self.file = file
    }
}

/// systemd's `LoadState` of a unit.
public enum LoadState: Hashable, Sendable {
    case loaded, notFound, error, masked, other(String)

    public init(systemdValue: String) {
        switch systemdValue {
        case "loaded": self = .loaded
        case "not-found": self = .notFound
        case "error", "bad-setting": self = .error
        case "masked": self = .masked
        default: self = .other(String(systemdValue.prefix(64)))
        }
    }
}

/// systemd's `ActiveState` of a unit.
public enum ActiveState: Hashable, Sendable {
    case active, reloading, inactive, failed, activating, deactivating, other(String)

    public init(systemdValue: String) {
        switch systemdValue {
        case "active": self = .active
        case "reloading": self = .reloading
        case "inactive": self = .inactive
        case "failed": self = .failed
        case "activating": self = .activating
        case "deactivating": self = .deactivating
        default: self = .other(String(systemdValue.prefix(64)))
        }
    }

    /// Running or on its way there: a stop is needed to take it down.
    var isUp: Bool {
        switch self {
        case .active, .reloading, .activating: return true
        case .inactive, .failed, .deactivating, .other: return false
        }
    }
}

/// What the shell saw of one unit in the agent's unit directory or in systemd.
public struct ObservedUnit: Hashable, Sendable {
    public var name: UnitName
    public var loadState: LoadState
    public var activeState: ActiveState
    /// systemd's `SubState` (running, exited, dead, ...), reported, never decided on.
    public var subState: String
    /// The hash of the file the agent finds on disk for this unit; nil: no file.
    public var fileHash: UnitHash?
    /// Whether the drop-in that binds the unit to systemd's lease unit is on disk beside it.
    public var isBoundToLease: Bool
    /// Set when the machine's systemd knows this unit from a file outside the agent's unit
    /// directory (its `FragmentPath`: /lib/systemd/system/ssh.service), or from none at all
    /// (transient, generated): the host's unit, which the cluster must never write, start or stop.
    public var foreignFragmentPath: String?

    public init(name: UnitName, loadState: LoadState, activeState: ActiveState, subState: String, fileHash: UnitHash?,
                isBoundToLease: Bool = true, foreignFragmentPath: String? = nil) {
        self.foreignFragmentPath = foreignFragmentPath
        self.name = name
        self.loadState = loadState
        self.activeState = activeState
        self.subState = subState
        self.fileHash = fileHash
        self.isBoundToLease = isBoundToLease
    }
}

/// What the machine's lease allows a plan (`MachineLease.Phase`, seen by the reconciler).
public enum LeaseGate: Hashable, Sendable {
    /// Held: units start and stop as desired.
    case held
    /// Not known yet in this process (a restart): nothing starts, nothing desired is stopped.
    case unknown
    /// Lapsed or revoked: every unit stops, none starts.
    case lapsed
}

/// One step for the shell. Ordering contract: run the actions in order, each completing before
/// the next starts (stops, then file removals, then writes and bindings, then one daemon
/// reload, then starts).
/// If one fails, run no more and plan again from a fresh observation: plans are computed from
/// what is observed, so a repeated plan finishes what a failed one started and redoes nothing.
public enum UnitAction: Hashable, Sendable {
    case stop(UnitName)
    /// Removes the unit's file and its lease binding.
    case removeFile(UnitName)
    /// Writes the unit's file and its lease binding.
    case writeFile(UnitName, [UInt8])
    /// Writes the lease binding of a unit whose file is already there.
    case bindToLease(UnitName)
    /// `systemctl daemon-reload`: at most once per plan, after every file change.
    case reloadDaemon
    case start(UnitName)
}

/// A change in a unit's observed state, to publish to the cluster (fleet's unit states).
public struct UnitStateReport: Hashable, Sendable {
    public enum Change: Hashable, Sendable {
        case observed(loadState: LoadState, activeState: ActiveState, subState: String, fileHash: UnitHash?)
        /// The machine's systemd has a unit of this name of its own (`ObservedUnit.foreignFragmentPath`):
        /// the agent leaves it alone and the cluster's unit does not run here.
        case refused(foreignFragmentPath: String)
        /// The unit is no longer seen on this machine.
        case gone
    }
    public var name: UnitName
    public var change: Change
}

public enum AgentError: Error, Hashable, Sendable, CustomStringConvertible {
    case tooManyUnits(count: Int, limit: Int)
    case duplicateUnit(String)
    case desiredHashMismatch(String)
    case notAUnit(String)

    public var description: String {
        switch self {
        case .tooManyUnits(let count, let limit): return "\(count) units, limit \(limit)"
        case .duplicateUnit(let name): return "\(name) listed twice"
        case .desiredHashMismatch(let name): return "desired file of \(name) does not have the desired hash"
        case .notAUnit(let name): return "\(name) is a template: only units run"
        }
    }
}
