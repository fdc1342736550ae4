import Registry
import UnitFile

/// Which global units run on a machine. Global units are never assigned: the leader's placer and
/// every agent compute this from the same registry state, so it must be a pure function of it.
///
/// A global unit runs on every live machine its metadata matches, except where it conflicts with
/// a global unit admitted before it. Admission goes in launch order (`activeSince`, then name):
/// of two global units that conflict with each other the one launched first keeps every machine,
/// and of two launched by one command the first by name does (fleet's
/// TestScheduleGlobalConflicts). A unit never conflicts with itself, so a global unit whose glob
/// matches its own name (`Conflicts=conflict-global.*.service` in `conflict-global.0.service`)
/// runs everywhere. Non-global units yield to admitted global units (the placer keeps them off a
/// machine whose global units conflict with them, in both directions), never the other way.
enum GlobalUnits {
    /// The admitted global units among `candidates` (global, not inactive, matching the machine),
    /// sorted by name.
    static func admitted(_ candidates: [UnitRecord]) -> [UnitRecord] {
        // The common case, no global unit with `Conflicts`: nothing to decide.
        guard candidates.contains(where: { !$0.options.conflicts.isEmpty }) else {
            return candidates.sorted { $0.name < $1.name }
        }
        let launchOrder = candidates.sorted { ($0.activeSince, $0.name) < ($1.activeSince, $1.name) }
        var admitted: [UnitRecord] = []
        for unit in launchOrder where !admitted.contains(where: { conflict(unit, $0) }) {
            admitted.append(unit)
        }
        return admitted.sorted { $0.name < $1.name }
    }

    /// Whether two different units may not share a machine: a glob of either matches the other.
    static func conflict(_ first: UnitRecord, _ second: UnitRecord) -> Bool {
        guard first.name != second.name else { return false }
        return first.options.conflicts.contains { $0.matches(second.name.rawValue) }
            || second.options.conflicts.contains { $0.matches(first.name.rawValue) }
    }

    /// The candidates for a machine with `metadata`: global units not inactive that it matches.
    static func candidates(in registry: RegistryState, metadata: [String: String]) -> [UnitRecord] {
        registry.units.values.filter { unit in
            unit.options.isGlobal && unit.targetState != .inactive
                && MetadataMatcher(unit.options.machineMetadata).isSatisfied(by: metadata)
        }
    }
}
