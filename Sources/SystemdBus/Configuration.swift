/// Which bus a `SystemdManager` talks to.
public enum BusTarget: Sendable, CustomStringConvertible {
    /// The machine's system bus (`/run/dbus/system_bus_socket`), i.e. PID 1's systemd.
    case system
    /// The calling user's bus and so the user manager (fleet's `systemd_user`).
    case user
    /// A D-Bus address such as `unix:path=/proc/PID/root/run/dbus/system_bus_socket`, the way the
    /// test bed reaches a machine's system bus from the host.
    case address(String)
    /// An address looked up again before every connection attempt, for a bus whose address
    /// changes when its machine restarts (a test bed machine's PID changes when it boots again).
    /// Returning nil means "not reachable now"; the attempt fails and is retried with backoff.
    case resolvedAddress(@Sendable () -> String?)

    public var description: String {
        switch self {
        case .system: "system bus"
        case .user: "user bus"
        case .address(let address): address
        case .resolvedAddress(let resolve): resolve() ?? "an unresolved address"
        }
    }
}

/// Where unit files are written, seen two ways: `writePath` from this process, `managerPath`
/// from the systemd that links them. They differ when the systemd runs in another mount
/// namespace (a test bed machine: write under `/proc/PID/root/run/...`, link `/run/...`).
public struct UnitFileDirectory: Sendable, Hashable {
    public var writePath: String
    public var managerPath: String

    public init(writePath: String, managerPath: String) {
        self.writePath = writePath
        self.managerPath = managerPath
    }

    /// A runtime directory under /run, as fleet's /run/fleet/units: gone at reboot, like the
    /// runtime links made to it.
    public static let runtimeDefault = UnitFileDirectory(
        writePath: "/run/flotilla/units", managerPath: "/run/flotilla/units")
}

/// Settings of a `SystemdManager`. Every queue and wait has a limit here; `validate()` checks the
/// relations between them once, at init.
public struct SystemdBusConfiguration: Sendable {
    public var bus: BusTarget = .system
    public var unitFileDirectory: UnitFileDirectory = .runtimeDefault
    /// sd-bus timeout of every method call.
    public var callTimeout: Duration = .seconds(10)
    /// sd-bus timeout of `Reload` (daemon-reload), which takes longer the more units and the
    /// busier the machine. systemctl allows daemon-reload twice its default timeout (2 x 90 s).
    public var reloadTimeout: Duration = .seconds(180)
    /// How long `startUnit` and friends wait for the job's `JobRemoved`. systemd's own default
    /// start timeout is 90 s, so the default leaves room for it to report `timeout` itself.
    public var jobTimeout: Duration = .seconds(120)
    /// How long a connection attempt may take, authentication and Subscribe included.
    public var connectTimeout: Duration = .seconds(5)
    /// First and largest pause between reconnect attempts; the pause doubles in between.
    public var reconnectBackoffMin: Duration = .milliseconds(50)
    public var reconnectBackoffMax: Duration = .seconds(5)
    /// Calls sent and not yet answered. dbus-daemon's system bus refuses more than a few hundred
    /// pending replies per connection (max_replies_per_connection), so stay well below it.
    public var inflightCallsMax: Int = 64
    /// Calls waiting for an in-flight slot; beyond this, calls fail with `.overloaded`.
    public var queuedCallsMax: Int = 16_384
    /// Units whose state is tracked; beyond this `watch` throws.
    public var watchedUnitsMax: Int = 16_384
    /// Up to this many units are re-read by name (ListUnitsByPatterns); more at once (a resync
    /// after a reconnect or a daemon-reload) with one ListUnits, filtered on this side.
    public var refreshByPatternUnitsMax: Int = 32
    /// sd_bus messages processed before the event loop looks at its job queue again.
    public var processBatchMessagesMax: Int = 64
    /// `JobRemoved` signals kept for jobs nobody waits for yet (insurance against reordering).
    public var orphanJobResultsMax: Int = 256
    /// A name shown in sd-bus debug output.
    public var connectionDescription: String = "flotilla"

    public init(bus: BusTarget = .system) {
        self.bus = bus
    }

    /// Checks the relations between the settings; a bad configuration is a programmer error.
    public func validate() {
        precondition(callTimeout > .zero, "callTimeout must be positive, is \(callTimeout)")
        precondition(reloadTimeout >= callTimeout, "reloadTimeout (\(reloadTimeout)) must be at least callTimeout (\(callTimeout))")
        precondition(jobTimeout > .zero, "jobTimeout must be positive, is \(jobTimeout)")
        precondition(connectTimeout > .zero, "connectTimeout must be positive")
        precondition(
            reconnectBackoffMin > .zero && reconnectBackoffMin <= reconnectBackoffMax,
            "need 0 < reconnectBackoffMin (\(reconnectBackoffMin)) <= reconnectBackoffMax (\(reconnectBackoffMax))")
        precondition(inflightCallsMax >= 1, "inflightCallsMax must be at least 1")
        precondition(queuedCallsMax >= 0, "queuedCallsMax must not be negative")
        precondition(watchedUnitsMax >= 1, "watchedUnitsMax must be at least 1")
        precondition(refreshByPatternUnitsMax >= 1, "refreshByPatternUnitsMax must be at least 1")
        precondition(processBatchMessagesMax >= 1, "processBatchMessagesMax must be at least 1")
        precondition(orphanJobResultsMax >= 0, "orphanJobResultsMax must not be negative")
    }
}
