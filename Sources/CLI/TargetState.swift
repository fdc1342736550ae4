import FleetAPI

/// What "reached" means for a blocking command, judged from systemd's reports
/// (`/fleet/v1/state`), as fleetctl judged it from the unit's current state:
/// launched = active, loaded = loaded and not running, inactive = no longer on any machine.
public enum TargetStateCheck {
    /// The state entry that shows `name` reached `target`, or nil. For `.inactive`, reached
    /// means no machine reports the unit (the returned entry is then nil too: use `isReached`).
    public static func isReached(_ target: FleetUnitTargetState, states: [FleetUnitState]) -> Bool {
        reachingState(target, states: states) != nil || (target == .inactive && states.isEmpty)
    }

    public static func reachingState(_ target: FleetUnitTargetState, states: [FleetUnitState]) -> FleetUnitState? {
        switch target {
        case .launched:
            return states.first { $0.systemdActiveState == "active" }
        case .loaded:
            let running: Set<String> = ["active", "activating", "deactivating", "reloading"]
            return states.first { $0.systemdLoadState == "loaded" && !running.contains($0.systemdActiveState) }
        case .inactive:
            return nil
        }
    }

    /// fleetctl's line for a unit that reached its state: `Unit web.service launched on 0123abcd.../10.0.0.1`.
    public static func reachedLine(unit: String, target: FleetUnitTargetState, machineID: String?, ip: String?) -> String {
        guard let machineID, !machineID.isEmpty else { return "Unit \(unit) \(target.rawValue)" }
        return "Unit \(unit) \(target.rawValue) on \(machineFullLegend(machineID, ip: ip, full: false))"
    }
}

/// fleetctl's `--no-block`/`--block-attempts`: nil means do not wait, 0 wait forever, N at most N polls.
public func blockAttempts(noBlock: Bool, blockAttempts: Int) -> Int? {
    if noBlock { return nil }
    return max(0, blockAttempts)
}
