import Registry
import UnitFile

/// Leader-side placement: a pure function from the registry and the live machines to a batch of
/// `assign`/`unassign` commands (fleet's engine: engine/scheduler.go, engine/reconciler.go).
///
/// Rules, as in fleet's Documentation/unit-files-and-scheduling.md:
/// - only units whose target state is `loaded` or `launched` are placed; `inactive` units are
///   unassigned;
/// - `MachineID`: only that machine; `MachineMetadata`: AND across keys, OR across values of one
///   key, or fleet's comparisons (`ram>=1024`, `disk!=hdd`; see `MetadataMatcher`);
/// - `MachineOf`: on the machine of every named peer ("follower units will reschedule themselves
///   ... to ensure their MachineOf options are always fulfilled"); a global peer is on every
///   machine its metadata matches;
/// - `Conflicts`: never on a machine holding a unit matching one of its globs, in both directions,
///   global units included; a unit never conflicts with itself. Of global units that conflict
///   with each other, the one launched first runs (`GlobalUnits`);
/// - `Replaces`: a unit placed on a machine pushes the units its globs match off that machine, and
///   they may never be placed beside it;
/// - `Global`: never assigned; such a unit runs on every live machine its metadata matches
///   (`globalUnits(in:on:)`), which agents compute for themselves;
/// - template instances are units like any other; templates are never placed.
///
/// Choice: the live machine with the fewest non-global units, ties broken by machine id.
/// Stability: a placed unit stays while its machine is listed, not drained, under its cap, and its
/// constraints still hold, so a leader change never moves anything. The caller lists every
/// machine whose lease has not been revoked (a revocation unplaces the machine's units itself),
/// and marks the ones that may not receive new units (`acceptsNewUnits`).
/// Beyond fleet: drained machines (their units move away) and per-machine unit caps.
public enum Scheduler {
    public static func plan(
        registry: RegistryState, liveMachines: [LiveMachine], configuration: SchedulerConfiguration = .standard
    ) -> SchedulingPlan {
        var placer = Placer(registry: registry, liveMachines: liveMachines)
        placer.keepCurrentPlacements()
        placer.placePending(roundsMax: configuration.placementRoundsMax)
        return placer.plan(batchCountMax: min(configuration.batchCountMax, registry.limits.batchCountMax))
    }

    /// The global units that run on `machine`: those not inactive whose metadata it matches and
    /// that no global unit launched before them conflicts with (`GlobalUnits`), sorted by name.
    /// Global units are computed, never assigned.
    public static func globalUnits(in registry: RegistryState, on machine: LiveMachine) -> [UnitName] {
        GlobalUnits.admitted(GlobalUnits.candidates(in: registry, metadata: machine.metadata)).map(\.name)
    }

    /// What `machine`'s agent should hold: the units assigned to it and the global units it
    /// matches, none inactive, sorted by name. The glue between the registry and `Agent`.
    /// Filters first and sorts only what it keeps: a machine's share is small, and sorting
    /// every unit name for every agent's long poll made adding units one by one quadratic.
    public static func units(for machine: LiveMachine, in registry: RegistryState) -> [UnitRecord] {
        var assigned: [UnitRecord] = []
        var globals: [UnitRecord] = []
        for unit in registry.units.values where unit.targetState != .inactive {
            if unit.options.isGlobal {
                if MetadataMatcher(unit.options.machineMetadata).isSatisfied(by: machine.metadata) { globals.append(unit) }
            } else if unit.machine == machine.id {
                assigned.append(unit)
            }
        }
        return (assigned + GlobalUnits.admitted(globals)).sorted { $0.name < $1.name }
    }
}
