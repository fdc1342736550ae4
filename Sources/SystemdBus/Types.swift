/// How systemd queues a job, the `mode` argument of `StartUnit` and friends
/// (org.freedesktop.systemd1(5): "replace", "fail", "isolate", ...).
public enum JobMode: String, Sendable, CaseIterable {
    case replace
    case fail
    case isolate
    case ignoreDependencies = "ignore-dependencies"
    case ignoreRequirements = "ignore-requirements"
    case replaceIrreversibly = "replace-irreversibly"
    case flush
}

/// The `result` of a `JobRemoved` signal. Unknown words from newer systemd pass through.
public struct JobResult: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let done = JobResult(rawValue: "done")
    public static let canceled = JobResult(rawValue: "canceled")
    public static let timeout = JobResult(rawValue: "timeout")
    public static let failed = JobResult(rawValue: "failed")
    public static let dependency = JobResult(rawValue: "dependency")
    public static let skipped = JobResult(rawValue: "skipped")
    public static let invalid = JobResult(rawValue: "invalid")
    public static let assert = JobResult(rawValue: "assert")
    public static let unsupported = JobResult(rawValue: "unsupported")
    public static let collected = JobResult(rawValue: "collected")
    public static let once = JobResult(rawValue: "once")

    public var description: String { rawValue }
}

/// A unit's `LoadState`. Unknown words pass through.
public struct LoadState: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let stub = LoadState(rawValue: "stub")
    public static let loaded = LoadState(rawValue: "loaded")
    public static let notFound = LoadState(rawValue: "not-found")
    public static let badSetting = LoadState(rawValue: "bad-setting")
    public static let error = LoadState(rawValue: "error")
    public static let merged = LoadState(rawValue: "merged")
    public static let masked = LoadState(rawValue: "masked")
    /// Not systemd's: SystemdBus reports this for a watched unit that systemd does not hold in
    /// memory (never loaded, or garbage-collected: UnitRemoved). Tracking never loads a unit to
    /// ask, because systemd would only collect it again.
    public static let unloaded = LoadState(rawValue: "unloaded")

    public var description: String { rawValue }
}

/// A unit's `ActiveState`. Unknown words pass through.
public struct ActiveState: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let active = ActiveState(rawValue: "active")
    public static let reloading = ActiveState(rawValue: "reloading")
    public static let inactive = ActiveState(rawValue: "inactive")
    public static let failed = ActiveState(rawValue: "failed")
    public static let activating = ActiveState(rawValue: "activating")
    public static let deactivating = ActiveState(rawValue: "deactivating")
    public static let maintenance = ActiveState(rawValue: "maintenance")

    public var description: String { rawValue }
}

/// The three words `systemctl list-units` shows for a unit, as fleet reported them.
public struct UnitState: Sendable, Hashable, CustomStringConvertible {
    public var load: LoadState
    public var active: ActiveState
    public var sub: String

    public init(load: LoadState, active: ActiveState, sub: String) {
        self.load = load
        self.active = active
        self.sub = sub
    }

    public var description: String { "\(load) \(active) \(sub)" }

    /// What SystemdBus reports for a watched unit that systemd does not hold in memory.
    public static let unloaded = UnitState(load: .unloaded, active: .inactive, sub: "dead")
}

/// One element of `SystemdManager.stateChanges`: the latest state of one watched unit.
public struct UnitStateChange: Sendable, Hashable, CustomStringConvertible {
    public var unit: UnitName
    public var state: UnitState

    public init(unit: UnitName, state: UnitState) {
        self.unit = unit
        self.state = state
    }

    public var description: String { "\(unit) \(state)" }
}

/// One row of `ListUnitsByNames`.
public struct UnitStatus: Sendable, Hashable {
    public var name: String
    public var description: String
    public var state: UnitState
    public var following: String
    public var objectPath: String
    public var jobID: UInt32
    public var jobType: String
    public var jobPath: String
}

/// The properties of a unit that an agent reports. Timestamps are CLOCK_REALTIME microseconds
/// since the epoch, 0 when the event has not happened, as systemd gives them.
public struct UnitProperties: Sendable, Hashable {
    public var name: String
    public var state: UnitState
    /// `Result` of a service (`success`, `exit-code`, `signal`, `timeout`, `core-dump`, ...).
    public var result: String?
    public var mainPID: UInt32?
    public var nRestarts: UInt32?
    public var execMainStatus: Int32?
    public var fragmentPath: String
    public var needDaemonReload: Bool
    public var stateChangeTimestampMicroseconds: UInt64
    public var activeEnterTimestampMicroseconds: UInt64
    public var activeExitTimestampMicroseconds: UInt64
    public var inactiveEnterTimestampMicroseconds: UInt64
    public var inactiveExitTimestampMicroseconds: UInt64
}

/// One change `LinkUnitFiles`, `EnableUnitFiles` or `DisableUnitFiles` made: (type, file, destination),
/// where type is `symlink` or `unlink`.
public struct UnitFileChange: Sendable, Hashable {
    public var type: String
    public var file: String
    public var destination: String
}

/// What `writeUnitFile` did. `changed` means the content differs from what was there, so the
/// caller must `reload()` before systemd sees it (fleet compared unit hashes for the same reason).
public enum UnitFileWrite: Sendable, Hashable {
    case created
    case changed
    case unchanged
}

/// The reply of `EnableUnitFiles`.
public struct EnableResult: Sendable, Hashable {
    /// False when no unit had an `[Install]` section, so nothing was enabled.
    public var carriesInstallInfo: Bool
    public var changes: [UnitFileChange]
}

/// The state of the connection, as `SystemdManager.connectionEvents` reports it.
public enum ConnectionEvent: Sendable, Hashable {
    /// Connected and subscribed; watched units were resynchronised (`attempt` 0 is the first).
    case connected(attempt: Int)
    /// The connection died; calls in flight failed with `.disconnected`; a reconnect follows.
    case disconnected(reason: String)
    /// A reconnect attempt failed; the next follows after `retryAfter`.
    case reconnectFailed(attempt: Int, retryAfter: Duration)
    /// `close()` was called.
    case closed
}
