import Registry
import UnitFile

/// Holds back an assignment while another machine still runs the unit, so that a unit never runs
/// on two machines at once because of a scheduling decision.
///
/// Why: a plan places a unit as soon as the registry says it is free, but the machine it ran on
/// stops it only after it has read the change and systemd has stopped it (a docker container
/// takes up to seconds). Without the gate, a unit destroyed and at once created again, or moved
/// off a drained machine, started on its new machine before the old one had stopped it
/// (Contrib/chaos measured 112 to 899 ms of double running). fleet had the same window.
///
/// What it does with each assignment of `unit` to `machine` when another machine reports `unit`
/// as running (`running`, from the leader's table of the agents' reports):
/// - the unit is placed on that other machine (a move): the assignment becomes an unassignment,
///   so that the old machine stops it, and the assignment waits;
/// - the unit is not placed there (destroyed and created again, unassigned before): it waits.
/// A unit held for longer than `holdMillisecondsMax` goes through: a machine that reports a unit
/// as running and never stops it (its agent wedged, its reports stale) must not keep the unit
/// from running anywhere. Lost machines are not in `running`: their lease ends their units.
///
/// Reports alone leave a window: a machine that has just started a unit has not reported it yet
/// (Contrib/chaos: a unit started for a schedule just before its destroy, reported after it was
/// created again and placed elsewhere, ran on two machines for 101 ms). So the gate also keeps
/// the registry version at which each unit left a machine (`departures`, from `noteChange`) and
/// the newest schedule version each machine has said it acted on (`acknowledge`, from its state
/// reports): while a live machine has not acted on a schedule at least as new as the one without
/// the unit, the unit is treated as running there. The agent reports (and so acknowledges) after
/// every reconcile that dropped a unit from its schedule, so the wait is one reconcile and one
/// report, and every lease renewal carries it too (each voter hears every agent's renewals, so a
/// new leader already knows them). Machines that never acknowledged are not waited for.
public struct HandoffGate: Sendable {
    public var holdMillisecondsMax: Int64
    /// When each held unit was first held, on the caller's monotonic clock.
    public private(set) var heldSinceMilliseconds: [UnitName: Int64] = [:]

    /// A unit that left `machine` in the registry at `version`.
    public struct Departure: Equatable, Sendable {
        public var machine: MachineID
        public var version: UInt64
    }

    /// Departures not yet acknowledged by their machine, at most `departuresMax` (the oldest
    /// version goes first when full: a bound, not a policy; an evicted one still has the bound on
    /// holding and the running report).
    public private(set) var departures: [UnitName: Departure] = [:]
    public var departuresMax: Int
    /// The newest schedule (registry) version each machine has said it acted on.
    public private(set) var acknowledgedVersions: [MachineID: UInt64] = [:]
    /// Where each unit is placed, as the changes seen so far say (seeded from the first registry).
    private var placements: [UnitName: MachineID] = [:]
    private var seeded = false

    public init(holdMillisecondsMax: Int64, departuresMax: Int = 65_536) {
        self.holdMillisecondsMax = holdMillisecondsMax
        self.departuresMax = departuresMax
    }

    /// Records what a registry change did to the placement of `units` (`registry` is the state
    /// after it): a unit that was on a machine and is no longer there departed at this version.
    /// The first call only learns the placements.
    public mutating func noteChange(of units: [UnitName], in registry: RegistryState) {
        guard seeded else {
            seeded = true
            for (name, record) in registry.units { if let machine = record.machine { placements[name] = machine } }
            return
        }
        for unit in units {
            let now = registry.units[unit]?.machine
            let before = placements[unit]
            placements[unit] = now
            if let now, departures[unit]?.machine == now { departures.removeValue(forKey: unit) }
            if let before, before != now { depart(unit, from: before, at: registry.version) }
        }
    }

    /// A machine's lease was revoked: every unit the gate knew on it left it.
    public mutating func noteLeaseRevoked(_ machine: MachineID, in registry: RegistryState) {
        let units = placements.filter { $0.value == machine }.map(\.key)
        noteChange(of: units, in: registry)
    }

    /// `machine` says it acted on the schedule of registry version `version`. Returns whether
    /// that settles a departure (a held unit may now go through).
    public mutating func acknowledge(machine: MachineID, scheduleVersion version: UInt64) -> Bool {
        acknowledgedVersions[machine] = max(acknowledgedVersions[machine] ?? 0, version)
        let settled = departures.filter { $0.value.machine == machine && $0.value.version <= version }.map(\.key)
        for unit in settled { departures.removeValue(forKey: unit) }
        return !settled.isEmpty
    }

    /// Forgets what a machine acknowledged (it left the cluster).
    public mutating func forget(machine: MachineID) {
        acknowledgedVersions.removeValue(forKey: machine)
    }

    private mutating func depart(_ unit: UnitName, from machine: MachineID, at version: UInt64) {
        if version <= acknowledgedVersions[machine] ?? 0 { return }
        if departures[unit] == nil, departures.count >= departuresMax,
           let oldest = departures.min(by: { $0.value.version < $1.value.version })?.key {
            departures.removeValue(forKey: oldest)
        }
        departures[unit] = Departure(machine: machine, version: version)
    }

    /// The units held after the last `filter`.
    public var held: Set<UnitName> { Set(heldSinceMilliseconds.keys) }

    /// `commands` (a plan's, in its order) with the assignments that must wait taken out, and
    /// the unassignments of moves added before the assignments. `liveMachines` are the machines
    /// that may still run what they were given (renewing their lease): only their departures
    /// count, and a unit moved off one of them is unassigned first even if it never reported it.
    public mutating func filter(_ commands: [RegistryCommand], registry: RegistryState,
                                running reported: [UnitName: Set<MachineID>], liveMachines: Set<MachineID> = [],
                                nowMilliseconds: Int64) -> [RegistryCommand] {
        var running = reported
        // Only machines that acknowledge at all are waited for: an agent older than the
        // acknowledgement (a cluster half upgraded) would otherwise hold each unit for the bound.
        for (unit, departure) in departures
        where liveMachines.contains(departure.machine) && acknowledgedVersions[departure.machine] != nil {
            running[unit, default: []].insert(departure.machine)
        }

        var result: [RegistryCommand] = []
        var stillHeld: [UnitName: Int64] = [:]
        // One unassignment per assignment batch that had moves, so no batch outgrows the plan's.
        var unassignments: [RegistryCommand] = []
        for command in commands {
            guard case .assign(let assignments) = command.operation else {
                result.append(command)
                continue
            }
            var kept: [Assignment] = []
            var moves: [UnitName] = []
            for assignment in assignments {
                var elsewhere = (running[assignment.unit] ?? []).subtracting([assignment.machine])
                // Placed on a live machine that has not reported it yet: it may have started it.
                if let placed = registry.units[assignment.unit]?.machine, placed != assignment.machine,
                   liveMachines.contains(placed) {
                    elsewhere.insert(placed)
                }
                guard !elsewhere.isEmpty else {
                    kept.append(assignment)
                    continue
                }
                let since = heldSinceMilliseconds[assignment.unit] ?? nowMilliseconds
                if nowMilliseconds - since >= holdMillisecondsMax {
                    kept.append(assignment)
                    continue
                }
                stillHeld[assignment.unit] = since
                if let placed = registry.units[assignment.unit]?.machine, placed != assignment.machine, elsewhere.contains(placed) {
                    moves.append(assignment.unit)
                }
            }
            if !moves.isEmpty { unassignments.append(RegistryCommand(.unassign(moves))) }
            if !kept.isEmpty { result.append(RegistryCommand(.assign(kept), stamp: command.stamp)) }
        }
        heldSinceMilliseconds = stillHeld
        // Unassignments go before every assignment (the plan's ordering contract).
        let firstAssign = result.firstIndex { if case .assign = $0.operation { true } else { false } } ?? result.endIndex
        result.insert(contentsOf: unassignments, at: firstAssign)
        return result
    }

    /// systemd's active states in which a unit's processes may still run.
    public static func isRunning(activeState: String) -> Bool {
        ["active", "activating", "deactivating", "reloading", "refreshing"].contains(activeState)
    }
}
