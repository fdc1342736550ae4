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
public struct HandoffGate: Sendable {
    public var holdMillisecondsMax: Int64
    /// When each held unit was first held, on the caller's monotonic clock.
    public private(set) var heldSinceMilliseconds: [UnitName: Int64] = [:]

    public init(holdMillisecondsMax: Int64) {
        self.holdMillisecondsMax = holdMillisecondsMax
    }

    /// The units held after the last `filter`.
    public var held: Set<UnitName> { Set(heldSinceMilliseconds.keys) }

    /// `commands` (a plan's, in its order) with the assignments that must wait taken out, and
    /// the unassignments of moves added before the assignments.
    public mutating func filter(_ commands: [RegistryCommand], registry: RegistryState,
                                running: [UnitName: Set<MachineID>], nowMilliseconds: Int64) -> [RegistryCommand] {
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
                let elsewhere = (running[assignment.unit] ?? []).subtracting([assignment.machine])
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
