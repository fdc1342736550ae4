import Foundation
import Logging
import SystemdBus
import UnitFile

/// The machine's lease as systemd enforces it: `flotilla-lease.service`, a `Type=notify` unit
/// whose main process only sleeps and whose watchdog flotillad pings on its behalf
/// (`SystemdNotifier.notify(_:onBehalfOf:socketPath:)`), and a drop-in beside every unit the
/// agent runs that binds it to the lease unit (`BindsTo=` and `After=`).
///
/// Why a watchdog: each held renewal round sends one datagram, `WATCHDOG=1` with
/// `WATCHDOG_USEC=` set to the time left until the lease's deadline, so systemd's own timer
/// ends the lease at the deadline (plus its slack Δ) whether or not flotillad is still running:
/// a frozen flotillad (SIGSTOP, a stuck process) cannot keep units alive past it. systemd 252
/// refuses to change `RuntimeMaxSec=` of a running unit over D-Bus (tried: "Cannot set property
/// RuntimeMaxUSec"), which rules out the other obvious design; the watchdog needs no D-Bus at
/// all, only systemd's notify socket. When the watchdog fires, systemd kills the sleeper
/// (SIGKILL, no core dump), the unit fails, and `BindsTo=` stops every bound unit.
///
/// `Type=notify` matters too: a bound unit started while the lease unit is down pulls it in,
/// but the pulled-in start only completes when flotillad sends `READY=1`, which it does only
/// while it holds the lease; until then the bound unit waits (`After=`) and then fails. So
/// nothing but flotillad can bring the units back. A restarted flotillad finds the lease unit
/// still running and simply goes on pinging it: its units never stop.
struct SystemdLeaseUnit: Sendable {
    static let unit = try! UnitName("flotilla-lease.service")
    static let dropInName = "50-flotilla-lease.conf"

    let manager: SystemdManager
    /// Where runtime unit files and drop-ins go: /run/systemd/system (or the user manager's).
    let runtimeDirectory: String
    let notifySocketPath: String
    let leaseMilliseconds: Int64
    let logger: Logger

    var unitFileText: String {
        let seconds = (leaseMilliseconds + 999) / 1_000
        return """
        # Written by flotillad. While this unit is active, this machine holds its lease and may run
        # the units flotillad places here; each of them is bound to it (BindsTo=, After=). flotillad
        # pings its watchdog after each renewal that a majority of the voters granted; when the
        # pings stop, systemd ends this unit and with it every bound unit.
        [Unit]
        Description=Flotilla lease: this machine may run the cluster's units

        [Service]
        Type=notify
        NotifyAccess=main
        ExecStart=/bin/sleep infinity
        WatchdogSec=\(seconds)
        WatchdogSignal=SIGKILL
        TimeoutStartSec=\(seconds)
        Restart=no

        """
    }

    static let bindingText = """
        # Written by flotillad: this unit runs only while the machine holds its lease.
        [Unit]
        BindsTo=flotilla-lease.service
        After=flotilla-lease.service

        """

    /// Writes the lease unit's file if it differs (a new lease time); true when systemd must reload.
    func install() throws -> Bool {
        let path = runtimeDirectory + "/" + Self.unit.rawValue
        let text = unitFileText
        if (try? String(contentsOfFile: path, encoding: .utf8)) == text { return false }
        try FileManager.default.createDirectory(atPath: runtimeDirectory, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        return true
    }

    func bindingPath(_ unit: UnitName) -> String {
        runtimeDirectory + "/" + unit.rawValue + ".d/" + Self.dropInName
    }

    func isBound(_ unit: UnitName) -> Bool {
        FileManager.default.fileExists(atPath: bindingPath(unit))
    }

    func bind(_ unit: UnitName) throws {
        let path = bindingPath(unit)
        try FileManager.default.createDirectory(atPath: runtimeDirectory + "/" + unit.rawValue + ".d", withIntermediateDirectories: true)
        try Data(Self.bindingText.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    func unbind(_ unit: UnitName) {
        try? FileManager.default.removeItem(atPath: bindingPath(unit))
        try? FileManager.default.removeItem(atPath: runtimeDirectory + "/" + unit.rawValue + ".d")
    }

    /// Makes the lease unit run until `deadlineMilliseconds` (monotonic, as systemd times its
    /// watchdog): starts it if it is not running, then sends READY, WATCHDOG and the time left.
    /// Returns the main PID pinged, for the next call.
    ///
    /// In the steady state this makes no D-Bus call: the PID of the last call is used again if
    /// /proc still shows it in the lease unit's cgroup (a PID reused by another process would be
    /// in another cgroup, and must never get these messages). The bus can be busy for seconds
    /// with a thousand start jobs; a ping queued behind them let the lease run out (seen on the
    /// test bed: every unit stopped and started again).
    func extend(untilMilliseconds deadlineMilliseconds: Int64, knownMainPID: Int32?) async throws -> Int32 {
        var mainPID = knownMainPID.flatMap { isLeaseProcess($0) ? $0 : nil }
        if mainPID == nil { mainPID = await runningMainPID() }
        if mainPID == nil { mainPID = try await startLease() }
        guard let pid = mainPID else { throw SystemdLeaseError.noMainProcess }
        let remainingMilliseconds = deadlineMilliseconds - Node.nowMilliseconds()
        guard remainingMilliseconds > 0 else { return pid }
        try SystemdNotifier.notify([.ready, .watchdog, .custom(key: "WATCHDOG_USEC", value: String(remainingMilliseconds * 1_000))],
                                   onBehalfOf: pid, socketPath: notifySocketPath)
        return pid
    }

    /// Whether `pid` is a process of the lease unit, by its cgroup (one small file read).
    func isLeaseProcess(_ pid: Int32) -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return false }
        return text.split(separator: "\n").contains { $0.hasSuffix("/" + Self.unit.rawValue) }
    }

    /// The lease unit's main PID when it is running (active or still activating), else nil.
    func runningMainPID() async -> Int32? {
        guard let properties = try? await manager.unitProperties(Self.unit) else { return nil }
        guard [ActiveState.active, .activating, .reloading].contains(properties.state.active),
              let pid = properties.mainPID, pid > 0, pid <= UInt32(Int32.max) else { return nil }
        return Int32(pid)
    }

    /// Starts the lease unit and returns its main PID once systemd has forked it. The start job
    /// completes only on READY=1, which `extend` sends next, so it is not awaited here.
    private func startLease() async throws -> Int32 {
        try? await manager.resetFailedUnit(Self.unit)
        let manager = self.manager
        let logger = self.logger
        Task {
            do {
                let result = try await manager.startUnit(Self.unit)
                if result != .done { logger.warning("the lease unit's start ended \(result)") }
            } catch {
                logger.warning("starting the lease unit failed", metadata: ["error": "\(error)"])
            }
        }
        let deadline = ContinuousClock.now + .seconds(2)
        while ContinuousClock.now < deadline {
            if let pid = await runningMainPID() { return pid }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw SystemdLeaseError.noMainProcess
    }

    /// Ends the lease now: systemd stops every bound unit, then the lease unit. Returns when the
    /// stop job is done (the bound units have stopped) or failed.
    func end() async {
        do {
            _ = try await manager.stopUnit(Self.unit)
        } catch {
            logger.warning("stopping the lease unit failed; its watchdog ends it", metadata: ["error": "\(error)"])
        }
    }
}

enum SystemdLeaseError: Error, CustomStringConvertible {
    case noMainProcess

    var description: String { "the lease unit flotilla-lease.service has no main process (did /bin/sleep start?)" }
}
