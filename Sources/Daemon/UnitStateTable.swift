import FleetAPI
import Registry
import Locking
import UnitFile

/// The leader's in-memory table of what each machine's systemd reports (fleet's unit states).
/// It is not in the log, by design: states change far more often than desired state, and a new
/// leader rebuilds the table from the agents' resyncs, which its new term triggers.
final class UnitStateTable: Sendable {
    private let table = Locked<[String: [String: FleetUnitState]]>([:])
    /// Units per machine kept, to bound what one agent can make the leader hold.
    let unitsPerMachineMax: Int
    /// Machines kept: the registry's own bound, so reports under made-up machine IDs cannot
    /// grow the table past what a real cluster could fill.
    let machinesMax: Int
    /// The longest hash or systemd state string kept (a hash is 40 hex digits, states are words).
    static let fieldBytesMax = 256

    init(unitsPerMachineMax: Int = 20_000, machinesMax: Int = RegistryLimits.standard.machinesMax) {
        self.unitsPerMachineMax = unitsPerMachineMax
        self.machinesMax = machinesMax
    }

    enum ApplyOutcome: Equatable {
        /// Applied; the states that changed (for events).
        case applied(changed: [FleetUnitState], gone: [String])
        /// A change list from a machine the table holds nothing for: the agent must resync.
        case needsResync
        /// Not a report the table can take: an invalid machine ID, or a new machine past
        /// `machinesMax`.
        case refused(String)
    }

    /// A state worth keeping: a valid unit name of the reporting machine, short fields.
    private static func isWellFormed(_ state: FleetUnitState, machineID: String) -> Bool {
        state.machineID == machineID && (try? UnitName(state.name)) != nil
            && [state.hash, state.systemdLoadState, state.systemdActiveState, state.systemdSubState].allSatisfy { $0.utf8.count <= fieldBytesMax }
    }

    func apply(_ report: StateReport) -> ApplyOutcome {
        guard (try? MachineID(report.machineID)) != nil else {
            return .refused("invalid machine ID \(String(report.machineID.prefix(MachineID.lengthMax)).debugDescription)")
        }
        return table.withLock { table in
            if table[report.machineID] == nil, table.count >= machinesMax {
                return .refused("the leader holds the states of \(machinesMax) machines, its limit")
            }
            var machine: [String: FleetUnitState]
            if report.isResync {
                machine = [:]
            } else {
                guard let existing = table[report.machineID] else { return .needsResync }
                machine = existing
            }
            let previous = table[report.machineID] ?? [:]
            var changed: [FleetUnitState] = []
            for state in report.states where Self.isWellFormed(state, machineID: report.machineID) {
                // Past the bound a new unit is not kept; the ones already known still change.
                guard machine[state.name] != nil || machine.count < unitsPerMachineMax else { continue }
                machine[state.name] = state
                if previous[state.name] != state { changed.append(state) }
            }
            var gone = report.gone.filter { machine.removeValue(forKey: $0) != nil }
            if report.isResync { gone += previous.keys.filter { machine[$0] == nil } }
            table[report.machineID] = machine
            return .applied(changed: changed, gone: gone.sorted())
        }
    }

    /// Sorted by machine ID, then unit name (fleet's order).
    func states(machineID: String?, unitName: String?) -> [FleetUnitState] {
        table.withLock { table in
            var result: [FleetUnitState] = []
            for machine in table.keys.sorted() where machineID == nil || machine == machineID {
                let units = table[machine]!
                for name in units.keys.sorted() where unitName == nil || name == unitName { result.append(units[name]!) }
            }
            return result
        }
    }

    /// One unit's state on one machine (the hot path of listing units: no scan, no sort).
    func state(machineID: String, unitName: String) -> FleetUnitState? {
        table.withLock { $0[machineID]?[unitName] }
    }

    func forget(machineID: String) { table.withLock { _ = $0.removeValue(forKey: machineID) } }
    func clear() { table.withLock { $0.removeAll() } }
}
